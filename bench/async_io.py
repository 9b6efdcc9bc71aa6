"""I/O-bound async runs: one worker process, hundreds to thousands of runs awaiting at once.

    python3 bench/async_io.py [--runs 500 2000] [--seconds 1.0] [--systems durable dbos]
        [--no-save]

Starts a throwaway PostgreSQL on 127.0.0.1:55483. For each count and system, in a fresh
database: one worker process is started and left to settle, the runs (one step awaiting
``asyncio.sleep(--seconds)``) are enqueued in one transaction, and the benchmark polls
until all have completed. Printed per case: completion time (commit of the enqueue to the
last completion, polled every 20 ms), the worker's CPU time over that span and its peak
resident memory, and the most database connections open at once (every backend but the
poller's). Saved to bench/results/async_io.json for the "Async jobs" section of
docs/benchmarks.md.

django-durable: ``runworker --concurrency 2 --async-concurrency N``. DBOS: an async
workflow with an async step on a DBOS queue with ``worker_concurrency`` N, polled every
0.1 s (its default is 1 s), in a process that launched DBOS (bench/peers/dbos_app.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import reexec_in_bench_venv  # noqa: E402

reexec_in_bench_venv()

import psycopg  # noqa: E402

from bench.postgres import ThrowawayPostgres  # noqa: E402
from bench.workers import WorkerGroup  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "async_io.json"
SETTLE = 3.0  # seconds a new worker gets to start and listen before the runs arrive
POLL = 0.02
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of the process and every thread in it."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Durable:
    name = "django-durable"
    completed_sql = "SELECT count(*) FROM django_durable_run WHERE status = 'completed'"

    def __init__(self, url: str, runs: int, seconds: float, logs: str) -> None:
        self.url, self.runs, self.seconds = url, runs, seconds
        self.env = {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        _python("-m", "django", "migrate", "-v", "0", env=self.env)
        self.workers = WorkerGroup(
            ["-m", "django", "runworker", "--concurrency", "2", "--async-concurrency", str(runs)],
            1,
            self.env,
            logs,
            f"durable-{runs}",
        )
        self.layout = f"runworker --concurrency 2 --async-concurrency {runs}"

    def enqueue(self) -> None:
        _python(
            "-c",
            "import django; django.setup(); from bench.benchapp.jobs import async_sleep; "
            f"async_sleep.enqueue_many([{{'seconds': {self.seconds}}}] * {self.runs})",
            env=self.env,
        )


class Dbos:
    name = "DBOS"
    completed_sql = "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"

    def __init__(self, url: str, runs: int, seconds: float, logs: str) -> None:
        self.url, self.runs, self.seconds = url, runs, seconds
        self.env = {
            "DATABASE_URL": url,
            "BENCH_DBOS_CONCURRENCY": str(runs),
            "BENCH_DBOS_POLL": "0.1",
        }
        _python("-m", "bench.peers.dbos_app", "migrate", env=self.env)
        self.workers = WorkerGroup(
            ["-m", "bench.peers.dbos_app"], 1, self.env, logs, f"dbos-{runs}"
        )
        from importlib.metadata import version

        self.layout = (
            f"dbos {version('dbos')}: one process, queue worker_concurrency {runs}, "
            "polled every 0.1 s"
        )

    def enqueue(self) -> None:
        import sqlalchemy as sa
        from dbos import DBOSClient

        engine = sa.create_engine(self.url.replace("postgres://", "postgresql+psycopg://", 1))
        client = DBOSClient(system_database_engine=engine)
        options = {"queue_name": "bench", "workflow_name": "async_sleep"}
        with engine.begin() as connection:
            for _ in range(self.runs):
                client.enqueue_in_transaction(connection, options, self.seconds)  # type: ignore[arg-type]
        client.destroy()
        engine.dispose()


def _python(*args: str, env: dict[str, str]) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"{shlex.join(args)} failed:\n{done.stdout}{done.stderr}")


def measure(system: Durable | Dbos) -> dict[str, object]:
    system.workers.start()
    try:
        time.sleep(SETTLE)
        (pid,) = system.workers.pids
        with psycopg.connect(system.url, autocommit=True) as poller:
            cpu_before = cpu_seconds(pid)
            system.enqueue()
            started = time.perf_counter()
            most_connections, most_memory = 0, 0.0
            deadline = started + 300
            while True:
                (done,) = poller.execute(system.completed_sql).fetchone()  # type: ignore[misc]
                (open_now,) = poller.execute(  # type: ignore[misc]
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
                most_connections = max(most_connections, open_now)
                most_memory = max(most_memory, resident_mib(pid))
                if done >= system.runs:
                    break
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{system.name}: {done} of {system.runs} in 300 s")
                system.workers.check_alive()
                time.sleep(POLL)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(pid) - cpu_before
    finally:
        system.workers.stop()
    return {
        "system": system.name,
        "layout": system.layout,
        "runs": system.runs,
        "seconds": elapsed,
        "worker_cpu_seconds": cpu,
        "worker_peak_rss_mib": most_memory,
        "connections": most_connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--systems", nargs="+", default=["durable", "dbos"])
    parser.add_argument("--port", type=int, default=55483)
    parser.add_argument("--no-save", action="store_true", help="print only")
    options = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    kinds = {"durable": Durable, "dbos": Dbos}

    server = ThrowawayPostgres(port=options.port)
    server.start()
    logs = tempfile.mkdtemp(prefix="bench-async-")
    results = []
    try:
        for runs in options.runs:
            for name in options.systems:
                database = f"{name}_{runs}"
                server.psql(f"CREATE DATABASE {database}", database="postgres")
                system = kinds[name](server.database_url(database), runs, options.seconds, logs)
                result = measure(system)
                results.append(result)
                print(
                    f"{result['system']:>14} {runs:>5} runs of a {options.seconds:g} s await: "
                    f"{result['seconds']:6.2f} s, worker CPU {result['worker_cpu_seconds']:.2f} s, "
                    f"peak RSS {result['worker_peak_rss_mib']:.0f} MiB, "
                    f"{result['connections']} connections  [{result['layout']}]",
                    flush=True,
                )
    finally:
        server.stop()
    print(f"load average before: {load}")
    if not options.no_save:
        RESULTS.write_text(
            json.dumps(
                {
                    "command": shlex.join(["python3", "bench/async_io.py", *sys.argv[1:]]),
                    "load": load,
                    "await_seconds": options.seconds,
                    "results": results,
                },
                indent=2,
            )
        )
        print(f"saved {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
