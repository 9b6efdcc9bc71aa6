"""django-durable under the common measurements (bench/driver.py), plus what only it
has: other process x thread layouts, worker memory over many runs, one step's checkpoint
cost and the claim's cost with 1,000,000 finished runs in the table."""

from __future__ import annotations

import os
import time
from importlib.metadata import version
from typing import Any

from bench.cpu import process_rss_kib
from bench.driver import drain, wait_completed
from bench.workers import WorkerGroup

JOBS = {1: "bench.one_step", 10: "bench.ten_steps"}

# Finished runs of the same job the claim looks for, dated before any new run, so their
# UUIDv7 ids sort first: the worst case for a claim that walked finished rows.
LOAD_FINISHED = """
INSERT INTO django_durable_run (
    id, job_name, queue_name, status, priority, args, kwargs, errors, attempt, recoveries,
    run_after, created_at, started_at, finished_at, cancel_requested
)
SELECT
    (lpad(to_hex(floor(extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7'
        || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
    'bench.one_step', 'default', 'completed', 0, '[]', '{}', '[]', 1, 0, ts, ts, ts,
    ts + interval '5 ms', false
FROM (
    SELECT md5(i::text) AS h, now() - interval '1 day' + i * interval '1 ms' AS ts
    FROM generate_series(1, %s) AS i
) AS generated
"""


class Durable:
    name = "django-durable"
    step_counts = (1, 10)
    bulk_note = "enqueue_many(), its bulk API (one INSERT ... SELECT FROM unnest)"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.url = options["url"]
        self.pickup_url = options["url"]
        self.version = f"django-durable {version('django-durable-runs')}"
        self.layout = f"{options['processes']} processes x {options['threads']} threads"
        os.environ.update(DATABASE_URL=self.url, DJANGO_SETTINGS_MODULE="bench.settings")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)

    def workers(self, processes: int | None = None, threads: int | None = None) -> WorkerGroup:
        processes = processes or self.options["processes"]
        threads = threads or self.options["threads"]
        # The default queue, as most deployments run it (see bench/README.md on "*").
        command = ["-m", "django", "runworker", "-v", "2"]
        return WorkerGroup(
            [*command, "--concurrency", str(threads)],
            processes,
            {
                "DATABASE_URL": self.url,
                "DJANGO_SETTINGS_MODULE": "bench.settings",
                "BENCH_PICKUP_URL": self.pickup_url,
            },
            self.options["log_dir"],
            f"durable-{processes}x{threads}",
        )

    def enqueue_each(self, count: int) -> None:
        from django_durable import get_job

        job = get_job(JOBS[1])
        for _ in range(count):
            job.enqueue()  # autocommit: one transaction each

    def enqueue_bulk(self, count: int, steps: int) -> None:
        from django.db import transaction

        from django_durable import get_job

        job = get_job(JOBS[steps])
        with transaction.atomic():
            job.enqueue_many([{}] * count)

    def enqueue_pickup(self, key: str) -> None:
        from django_durable import get_job

        get_job("bench.pickup").enqueue(key)

    def completed(self) -> int:
        from django_durable.models import Run

        return Run.objects.filter(status="completed").count()

    def reset(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE django_durable_run CASCADE")


def make_system(options: dict[str, Any]) -> Durable:
    return Durable(options)


def extras(system: Durable, workers: WorkerGroup, options: dict[str, Any], result: dict) -> None:
    """With the main workers still running: memory over ``leak_runs`` runs."""
    runs = options["leak_runs"]
    if not runs:
        return
    batch = 5000

    def drain_many(count: int) -> None:
        for start in range(0, count, batch):
            system.reset()
            size = min(batch, count - start)
            system.enqueue_bulk(size, 1)
            wait_completed(system, size, workers)

    drain_many(batch)  # warm-up: imports, caches, connection state
    before = [process_rss_kib(pid) for pid in workers.pids]
    started = time.perf_counter()
    drain_many(runs)
    elapsed = time.perf_counter() - started
    time.sleep(0.5)
    after = [process_rss_kib(pid) for pid in workers.pids]
    result["memory"] = {
        "runs": runs,
        "rss_before_mib": [kib / 1024 for kib in before],
        "rss_after_mib": [kib / 1024 for kib in after],
        "growth_pct": max(a / b - 1 for b, a in zip(before, after, strict=True)) * 100,
        "seconds": elapsed,
    }
    print(f"   memory growth {result['memory']['growth_pct']:+.1f}% over {runs:,}", flush=True)


def after(system: Durable, options: dict[str, Any], result: dict) -> None:
    """With no worker running: layouts, checkpoint cost, claim cost."""
    if options["layouts"]:
        result["layouts"] = {}
        for layout in options["layouts"]:
            processes, threads = (int(n) for n in layout.split("x"))
            group = system.workers(processes, threads)
            system.reset()
            system.enqueue_bulk(200, 1)
            group.start()
            try:
                wait_completed(system, 200, group)
                rate = drain(
                    system, group, options["runs"], 1, options["postmaster"], options["url"]
                )
            finally:
                group.stop()
            result["layouts"][layout] = rate["runs_per_s"]
            print(f"   layout {layout}: {rate['runs_per_s']:,.0f} runs/s", flush=True)
    result["checkpoint_ms"] = step_cost_ms(system, options["checkpoint_steps"])
    print(f"   checkpoint {result['checkpoint_ms']:.3f} ms", flush=True)
    result["claim"] = {
        "empty_ms": claim_cost_ms(system, 0, options["claims"]),
        "finished": options["finished_runs"],
        "full_ms": claim_cost_ms(system, options["finished_runs"], options["claims"]),
    }
    print(f"   claim {result['claim']}", flush=True)


def step_cost_ms(system: Durable, steps: int) -> float:
    """In-process: milliseconds per checkpointed no-op step of a long run."""
    from django_durable import get_job
    from django_durable.testing import run_until_idle

    system.reset()
    timings = {}
    for count in (1, steps + 1):
        get_job("bench.many_steps").enqueue(count)
        started = time.perf_counter()
        run_until_idle()
        timings[count] = time.perf_counter() - started
    return (timings[steps + 1] - timings[1]) / steps * 1000


def claim_cost_ms(system: Durable, finished: int, claims: int) -> float:
    """Milliseconds per claim of one run (one transaction each), with ``finished``
    completed runs of the same job in the table."""
    from django.db import connection

    from django_durable.storage import storage_for

    system.reset()
    with connection.cursor() as cursor:
        if finished:
            cursor.execute(LOAD_FINISHED, [finished])
    system.enqueue_bulk(claims, 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_durable_run")
    storage = storage_for("default")
    claim = lambda: storage.claim(  # noqa: E731
        owner="bench", job_names=["bench.one_step"], queues=["default"], limit=1
    )
    claim()  # warm: the plan and the connection
    started = time.perf_counter()
    for _ in range(claims - 1):
        assert claim(), "nothing to claim"
    return (time.perf_counter() - started) / (claims - 1) * 1000
