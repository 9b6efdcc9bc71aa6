"""enqueue_many against enqueue() in a loop, both in one transaction, on DATABASE_URL.

    DATABASE_URL=postgres://... .venv-3.13/bin/python bench/enqueue_many.py [--runs 10000]

Migrates the database it is given (use a throwaway one), deletes every run before each
round, and prints runs/s for each way, twice, alternating, so all see the same load. On
PostgreSQL the portable path (bulk_create) is measured beside PostgresStorage's unnest.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    options = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from bench.benchapp.jobs import one_step
    from django_durable.models import Run
    from django_durable.storage.orm import ORMStorage
    from django_durable.testing import use_storage

    call_command("migrate", verbosity=0)

    def one_by_one() -> None:
        with transaction.atomic():
            for _ in range(options.runs):
                one_step.enqueue()

    def many() -> None:
        with transaction.atomic():
            for _ in range(0, options.runs, options.batch):
                one_step.enqueue_many([{}] * options.batch)

    def many_portable() -> None:
        # The ORM's bulk_create, which PostgresStorage replaces with one unnest INSERT.
        with use_storage(ORMStorage("default")):
            many()

    ways = [("enqueue() in a loop", one_by_one), (f"enqueue_many({options.batch})", many)]
    if connection.vendor == "postgresql":
        ways.append((f"enqueue_many({options.batch}), portable path", many_portable))
    for name, enqueue in ways * 2:
        Run.objects.all().delete()
        started = time.perf_counter()
        enqueue()
        rate = options.runs / (time.perf_counter() - started)
        print(f"{connection.vendor}: {name}, one transaction: {rate:,.0f} runs/s")
    Run.objects.all().delete()


if __name__ == "__main__":
    main()
