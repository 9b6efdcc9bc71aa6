"""The no-op jobs as DBOS workflows on a DBOS queue, and the DBOS worker process.

    python -m bench.peers.dbos_app           # a worker: launch DBOS, serve the queue
    python -m bench.peers.dbos_app migrate   # create DBOS's system tables and exit

DATABASE_URL names the system database; BENCH_THREADS sets the size of DBOS's executor
thread pool (workflows at once per process). The queue keeps DBOS's defaults (no
worker_concurrency, polled every second) unless BENCH_DBOS_CONCURRENCY or
BENCH_DBOS_POLL say otherwise.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading

from dbos import DBOS

QUEUE = "bench"


@DBOS.step()
def noop() -> None:
    return None


@DBOS.step()
def record_pickup(key: str) -> None:
    from bench.pickup import record

    record(key)


@DBOS.workflow(name="one_step")
def one_step() -> None:
    noop()


@DBOS.workflow(name="ten_steps")
def ten_steps() -> None:
    for _ in range(10):
        noop()


@DBOS.workflow(name="pickup")
def pickup(key: str) -> None:
    record_pickup(key)


@DBOS.step()
async def await_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@DBOS.workflow(name="async_sleep")
async def async_sleep(seconds: float) -> None:
    """One async step awaiting a sleep (bench/async_io.py)."""
    await await_sleep(seconds)


def config() -> dict:
    return {
        "name": "bench-dbos",
        "system_database_url": os.environ["DATABASE_URL"].replace(
            "postgres://", "postgresql://", 1
        ),
        "max_executor_threads": int(os.environ.get("BENCH_THREADS", "8")),
    }


def main() -> None:
    DBOS(config=config())  # type: ignore[arg-type]
    DBOS.launch()
    # Declared in the database (DBOS 3.4); each process runs this many at once.
    concurrency = os.environ.get("BENCH_DBOS_CONCURRENCY")
    DBOS.register_queue(
        QUEUE,
        worker_concurrency=int(concurrency) if concurrency else None,
        polling_interval_sec=float(os.environ.get("BENCH_DBOS_POLL", "1.0")),
        on_conflict="always_update",
    )
    if sys.argv[1:] == ["migrate"]:
        DBOS.destroy()
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    DBOS.destroy()


if __name__ == "__main__":
    main()
