"""The hot-path cost of atomic steps: runs/s of 1-step ``atomic=True`` runs.

Drains ``--runs`` runs of one atomic step (an INSERT of one row) with an in-process
worker of ``--threads`` slots, ``--rounds`` times, and prints the median, next to the
same drain with a plain step. Run it on two checkouts on the same machine to compare:

    DATABASE_URL=postgres://durable:durable@127.0.0.1:5433/durable_bench \\
        .venv-3.11/bin/python bench/atomic_steps.py

It uses the test suite's settings (``tests/settings.py``) on ``DATABASE_URL``'s database
itself (SQLite by default), migrates it, and deletes only the runs and rows it made.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from django_durable import job  # noqa: E402
from django_durable.models import Run  # noqa: E402
from django_durable.worker import Worker  # noqa: E402
from tests.testapp.models import Account  # noqa: E402

OWNER = "bench-atomic"


@job(name="bench.atomic_step")
def atomic_step(ctx, i):
    return ctx.step("write", lambda: Account.objects.create(owner=OWNER).pk, atomic=True)


@job(name="bench.plain_step")
def plain_step(ctx, i):
    return ctx.step("write", lambda: Account.objects.create(owner=OWNER).pk)


def clean() -> None:
    Run.objects.filter(job_name__in=[atomic_step.name, plain_step.name]).delete()
    Account.objects.filter(owner=OWNER).delete()


def drain(bench_job, runs: int, threads: int) -> float:
    """Enqueue ``runs`` in one transaction, drain them; return runs per second."""
    clean()
    with transaction.atomic():
        for i in range(runs):
            bench_job.enqueue(i)
    worker = Worker(jobs={bench_job.name: bench_job}, concurrency=threads, burst=True)
    started = time.monotonic()
    worker.run()
    elapsed = time.monotonic() - started
    done = Run.objects.filter(job_name=bench_job.name, status="completed").count()
    assert done == runs, f"{done} of {runs} completed"
    return runs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    call_command("migrate", run_syncdb=True, verbosity=0)  # the test app has no migrations
    print(f"{connection.vendor}, {args.runs} runs, {args.threads} threads, median of {args.rounds}")
    try:
        for bench_job in (atomic_step, plain_step):
            rates = [drain(bench_job, args.runs, args.threads) for _ in range(args.rounds)]
            rounds = ", ".join(f"{rate:.0f}" for rate in rates)
            print(f"{bench_job.name}: {statistics.median(rates):.0f} runs/s ({rounds})")
    finally:
        clean()


if __name__ == "__main__":
    main()
