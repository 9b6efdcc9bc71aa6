"""Pruning benchmark: prune rate, and claim latency of a live drain while pruning.

    .venv-3.11/bin/python bench/prune.py [--runs 1000000] [--seconds 20] [--rate 200]
        [--batch-size 500] [--pause 0] [--sample] [--no-save]

Starts a throwaway PostgreSQL on 127.0.0.1:55482 and loads ``--runs`` completed runs
finished 10 days ago (3 journal entries and a log line each) with INSERT ... SELECT. Two
``runworker`` processes of 8 threads then drain 1-step runs enqueued at ``--rate`` per
second, first for ``--seconds`` without pruning, then while ``manage.py prune_runs``
deletes every old run. Claim latency is the database's ``started_at - run_after`` of each
run (the same clock for both). ``--sample`` also samples what PostgreSQL waits on in each
phase (bench/pg_sampler.py); off by default, because its queries every 20 ms raise the
quiet phase's p99 several-fold (seen: 5.6 ms without, 11.8-13.1 ms with). Prints the
prune rate and p50/p99 latency per phase, and saves them to bench/results/prune.json,
which the "Pruning" section of docs/benchmarks.md is drawn from (``python3 dev.py bench
--report-only`` redraws it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pg_sampler import PhaseSampler  # noqa: E402
from bench.postgres import ThrowawayPostgres  # noqa: E402
from bench.workers import WorkerGroup  # noqa: E402

LOAD_SQL = """
INSERT INTO django_durable_run (
    id, job_name, queue_name, status, priority, args, kwargs, errors, attempt, recoveries,
    run_after, created_at, started_at, finished_at, cancel_requested
)
SELECT gen_random_uuid(), 'bench.one_step', 'old', 'completed', 0, '[]', '{}', '[]', 1, 0,
    ts, ts, ts, ts + interval '40 ms', false
FROM (SELECT now() - interval '10 days' - i * interval '1 ms' AS ts
      FROM generate_series(1, %(runs)s) AS i) AS generated;
INSERT INTO django_durable_step (run_id, position, kind, name, status, result, attempts,
    run_attempt, started_at, finished_at)
SELECT id, p, 'step', 'step-' || p, 'completed', 'null', 1, 1, started_at, finished_at
FROM django_durable_run, generate_series(0, 2) AS p;
INSERT INTO django_durable_runlog (run_id, attempt, level, message, created_at)
SELECT id, 1, 20, 'hello from the benchmark', started_at FROM django_durable_run;
ANALYZE;
"""

WORKERS, THREADS = 2, 8
RESULTS = ROOT / "bench" / "results" / "prune.json"


def _latency(values: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(values), "p99": percentile(values, 0.99), "n": len(values)}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _no_sampler(url: str) -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


def enqueue_for(seconds: float, rate: float, stop: threading.Event | None = None) -> None:
    from django.db import connection

    from bench.benchapp.jobs import one_step

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (stop and stop.is_set()):
        one_step.enqueue()
        time.sleep(1 / rate)
    connection.close()


def latencies(since: float) -> list[float]:
    from django.db.models import F

    from django_durable.models import Run

    rows = (
        Run.objects.filter(job_name="bench.one_step", queue_name="default", status="completed")
        .filter(created_at__gte=_at(since))
        .annotate(latency=F("started_at") - F("run_after"))
        .values_list("latency", flat=True)
    )
    return [latency.total_seconds() * 1000 for latency in rows]


def _at(monotonic: float):
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=time.monotonic() - monotonic)


def wait_drained() -> None:
    from django_durable.models import Run

    while Run.objects.filter(queue_name="default").exclude(status="completed").exists():
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--pause", type=float, default=0.0, help="prune_runs --pause")
    parser.add_argument("--port", type=int, default=55482)
    parser.add_argument("--sample", action="store_true", help="sample wait events too")
    parser.add_argument("--no-save", action="store_true", help="print only")
    options = parser.parse_args()
    sampler = PhaseSampler if options.sample else _no_sampler
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())

    server = ThrowawayPostgres(port=options.port)
    server.start()
    logs = tempfile.mkdtemp(prefix="bench-prune-")
    env = {"DATABASE_URL": server.url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    os.environ.update(env)
    workers = WorkerGroup(
        ["-m", "django", "runworker", "--concurrency", str(THREADS)], WORKERS, env, logs, "w"
    )
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        server.psql(LOAD_SQL % {"runs": options.runs})
        print(f"loaded {options.runs:,} finished runs (3 steps, 1 log each) in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        workers.start()
        time.sleep(3)  # workers up and listening
        quiet = time.monotonic()
        with sampler(server.url) as quiet_phase:
            enqueue_for(options.seconds, options.rate)
            wait_drained()
        without = latencies(quiet)

        pruning = time.monotonic()
        stop = threading.Event()
        drain = threading.Thread(target=enqueue_for, args=(3600, options.rate, stop))
        drain.start()
        prune_started = time.perf_counter()
        with sampler(server.url) as prune_phase:
            done = subprocess.run(
                [sys.executable, "-m", "django", "prune_runs", "--older-than", "1d",
                 "--batch-size", str(options.batch_size), "--pause", str(options.pause)],
                env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                check=True,
            )  # fmt: skip
        prune_seconds = time.perf_counter() - prune_started
        stop.set()
        drain.join()
        wait_drained()
        during = latencies(pruning)
        workers.check_alive()
        print(done.stdout.strip().splitlines()[-1])
        print(
            f"prune rate: {options.runs / prune_seconds:,.0f} runs/s "
            f"({options.runs:,} runs in {prune_seconds:.1f} s, batch {options.batch_size}, "
            f"pause {options.pause} s)"
        )
        for name, values in (("without pruning", without), ("while pruning", during)):
            print(
                f"claim latency {name}: p50 {statistics.median(values):.1f} ms, "
                f"p99 {percentile(values, 0.99):.1f} ms ({len(values)} runs)"
            )
        if options.sample:
            print(quiet_phase.report("without pruning"))
            print(prune_phase.report("while pruning"))
        ratio = percentile(during, 0.99) / percentile(without, 0.99)
        print(f"p99 while pruning / p99 without: {ratio:.2f}x (target <= 1.5x)")
        if not options.no_save:
            RESULTS.write_text(
                json.dumps(
                    {
                        "command": shlex.join(["python3", "bench/prune.py", *sys.argv[1:]]),
                        "load": load,
                        "runs": options.runs,
                        "batch_size": options.batch_size,
                        "pause": options.pause,
                        "rate": options.rate,
                        "runs_per_second": options.runs / prune_seconds,
                        "without": _latency(without),
                        "while": _latency(during),
                    },
                    indent=2,
                )
            )
            print(f"saved {RESULTS.relative_to(ROOT)}")
    finally:
        workers.stop()
        server.stop()


if __name__ == "__main__":
    main()
