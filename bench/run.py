"""Worker benchmark: runworker against a throwaway PostgreSQL, next to pgbench.

    python3 dev.py bench            # or: .venv-3.11/bin/python bench/run.py

Starts PostgreSQL on 127.0.0.1:55432 in a temporary directory, then measures, in one go:
runs/second of 1-step and 10-step no-op jobs drained by 2 runworker processes x 8
threads; pickup latency (enqueue commit to first step start); the cost of one step's
checkpoint; and pgbench's single-row INSERT transaction on the same server. Prints a
table and the ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.postgres import ThrowawayPostgres  # noqa: E402


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


class Workers:
    """``processes`` runworker processes with ``threads`` threads each, idle and listening."""

    def __init__(self, url: str, processes: int, threads: int, log_dir: Path) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONPATH": str(ROOT),
        }
        self.logs = [log_dir / f"worker-{i}.log" for i in range(processes)]
        self.processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django",
                    "runworker",
                    "-v",
                    "2",
                    "--concurrency",
                    str(threads),
                    "--queue",
                    "*",
                ],
                env=env,
                stdout=open(log, "w"),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
            for log in self.logs
        ]
        deadline = time.monotonic() + 30
        while not all("event=listening" in log.read_text() for log in self.logs):
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start:\n" + self.logs[0].read_text())
            time.sleep(0.05)
        time.sleep(0.3)  # past their first, empty claim

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)


def reset() -> None:
    from django_durable.models import Run

    Run.objects.all().delete()


def drain_rate(job_name: str, runs: int, workers: Workers) -> tuple[float, float]:
    """Enqueue ``runs`` in one transaction; return (enqueues/s, runs/s drained)."""
    from django.db import transaction
    from django.db.models import Max

    from django_durable import get_job
    from django_durable.models import Run

    job = get_job(job_name)
    reset()
    started = time.perf_counter()
    with transaction.atomic():
        for _ in range(runs):
            job.enqueue()
    committed = time.time()
    enqueue_rate = runs / (time.perf_counter() - started)
    while Run.objects.filter(status="completed").count() < runs:
        time.sleep(0.05)
    last = Run.objects.aggregate(last=Max("finished_at"))["last"].timestamp()
    return enqueue_rate, runs / (last - committed)


def process_footprint(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, thread count) of a process, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return int(fields["VmRSS"].split()[0]), int(fields["Threads"])


def database_connections() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return int(cursor.fetchone()[0])


def leak_check(runs: int, workers: Workers) -> list[tuple[str, str, str]]:
    """Worker memory, threads and database connections after a warm-up and after ``runs``."""
    from django.db import transaction

    from django_durable import get_job
    from django_durable.models import Run

    job = get_job("bench.one_step")
    reset()
    batch = 5000

    def drain(count: int) -> None:
        for start in range(0, count, batch):
            with transaction.atomic():
                for _ in range(min(batch, count - start)):
                    job.enqueue()
            while Run.objects.filter(status="pending").exists():
                time.sleep(0.2)
            Run.objects.filter(status="completed").delete()

    drain(batch)  # warm-up: imports, caches, connection pools
    before = [process_footprint(p.pid) for p in workers.processes]
    connections_before = database_connections()
    drain(runs)
    time.sleep(0.5)
    after = [process_footprint(p.pid) for p in workers.processes]
    connections_after = database_connections()
    pairs = list(zip(before, after, strict=True))
    rss = [f"{b[0] / 1024:.1f} -> {a[0] / 1024:.1f} MiB" for b, a in pairs]
    growth = max(a[0] / b[0] - 1 for b, a in pairs) * 100
    return [
        (
            f"worker memory over {runs:,} runs (after a warm-up)",
            "; ".join(rss),
            f"{growth:+.1f}% at most",
        ),
        ("worker threads", f"{[b[1] for b in before]} -> {[a[1] for a in after]}", ""),
        ("database connections", f"{connections_before} -> {connections_after}", ""),
    ]


def pickup_latencies(samples: int) -> list[float]:
    """Milliseconds from an enqueue's commit to its first step starting."""
    from django.db import transaction

    from django_durable import get_job
    from django_durable.models import Run

    job = get_job("bench.first_step_time")
    reset()
    latencies = []
    for _ in range(samples):
        with transaction.atomic():
            handle = job.enqueue()
        committed = time.time()
        while (
            output := Run.objects.filter(pk=handle.id, status="completed")
            .values_list("output", flat=True)
            .first()
        ) is None:
            time.sleep(0.001)
        latencies.append((output - committed) * 1000)
        time.sleep(random.uniform(0.01, 0.03))  # workers go idle again
    return latencies


def step_cost_ms(steps: int) -> float:
    """In-process: milliseconds per checkpointed no-op step of a long run."""
    from django_durable import get_job
    from django_durable.testing import run_until_idle

    reset()
    timings = {}
    for count in (1, steps + 1):
        get_job("bench.many_steps").enqueue(count)
        started = time.perf_counter()
        run_until_idle()
        timings[count] = time.perf_counter() - started
    return (timings[steps + 1] - timings[1]) / steps * 1000


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4000, help="1-step runs to drain")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument(
        "--leak-runs", type=int, default=0, help="also drain this many runs, watching for leaks"
    )
    parser.add_argument(
        "--port", type=int, default=55432, help="port for the throwaway PostgreSQL (127.0.0.1)"
    )
    args = parser.parse_args()

    server = ThrowawayPostgres(port=args.port)
    server.start()
    try:
        server.psql("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v int NOT NULL)")
        insert = "INSERT INTO bench_insert (v) VALUES (1);\n"
        insert_tps = server.pgbench(insert, clients=1, seconds=args.pgbench_seconds)
        insert_tps_8 = server.pgbench(insert, clients=8, seconds=args.pgbench_seconds)
        setup_django(server.url)
        step_ms = step_cost_ms(2000)
        workers = Workers(server.url, args.processes, args.threads, server.root)
        try:
            enqueue_rate, one_step = drain_rate("bench.one_step", args.runs, workers)
            _, ten_steps = drain_rate("bench.ten_steps", args.runs // 4, workers)
            latencies = pickup_latencies(args.latency_samples)
            leaks = leak_check(args.leak_runs, workers) if args.leak_runs else []
        finally:
            workers.stop()
    finally:
        server.stop()

    insert_ms = 1000 / insert_tps
    layout = f"{args.processes} processes x {args.threads} threads"
    rows = [
        ("pgbench single-row INSERT, 1 client", f"{insert_tps:,.0f} tps ({insert_ms:.3f} ms)"),
        ("pgbench single-row INSERT, 8 clients", f"{insert_tps_8:,.0f} tps"),
        (f"1-step runs drained ({layout})", f"{one_step:,.0f} runs/s"),
        (f"10-step runs drained ({layout})", f"{ten_steps:,.0f} runs/s"),
        ("enqueue, one by one in one transaction", f"{enqueue_rate:,.0f} runs/s"),
        (
            "pickup latency p50 / p99 (LISTEN/NOTIFY)",
            f"{percentile(latencies, 0.5):.1f} / {percentile(latencies, 0.99):.1f} ms",
        ),
        ("one step's checkpoint (in-process, no-op step)", f"{step_ms:.3f} ms"),
        ("step checkpoint / pgbench INSERT transaction", f"{step_ms / insert_ms:.2f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    print(
        f"\ndjango-durable worker benchmark, PostgreSQL "
        f"{server_version_note()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"  pickup latency samples: {len(latencies)}, mean {statistics.mean(latencies):.1f} ms")
    for name, value, note in leaks:
        print(f"  {name}: {value} {note}".rstrip())


def server_version_note() -> str:
    result = subprocess.run(
        ["/usr/lib/postgresql/15/bin/postgres", "--version"], capture_output=True, text=True
    )
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" -> "15.18"
    return result.stdout.split()[2] if result.returncode == 0 else "?"


if __name__ == "__main__":
    main()
