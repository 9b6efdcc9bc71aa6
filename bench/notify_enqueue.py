"""What NOTIFY costs concurrent enqueuers on PostgreSQL: on against off, same database.

    DATABASE_URL=postgres://... .venv-3.13/bin/python bench/notify_enqueue.py \
        [--enqueuers 16] [--seconds 10] [--rounds 2]

Each enqueuer is a process of its own calling ``enqueue()`` one by one, each run in its
own transaction (as web requests do), for ``--seconds``; all start together. With
NOTIFY on, every enqueue announces its run (in autocommit, in its INSERT statement);
off, the enqueuers leave it out (workers would then find the runs at their next
poll). The two alternate, ``--rounds`` times each, so both see the same load.
Migrates the database it is given (use a throwaway one) and deletes every run before
each round.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")


def enqueuer(notify: bool, start: Any, seconds: float, counts: Any, index: int) -> None:
    import django

    django.setup()
    from bench.benchapp.jobs import one_step
    from django_durable import notify as notify_module

    if not notify:  # the bench's switch, nothing else's
        from django_durable.storage.postgresql import enqueue as insert

        notify_module._notify = lambda alias, names: None
        one_row = insert._one_sql
        insert._one_sql = lambda alias: one_row(alias).replace(  # type: ignore[assignment]
            'pg_notify(%(channel)s, "queue_name")', "NULL"
        )
        assert "pg_notify" not in insert._one_sql("default"), "the switch no longer matches"
    one_step.enqueue()  # connect before the clock starts
    start.wait()
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        one_step.enqueue()
        done += 1
    counts[index] = done


def round_rate(notify: bool, enqueuers: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(enqueuers + 1)
    counts = context.Array("q", enqueuers)
    processes = [
        context.Process(target=enqueuer, args=(notify, start, seconds, counts, index))
        for index in range(enqueuers)
    ]
    for process in processes:
        process.start()
    start.wait()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"an enqueuer exited with {process.exitcode}")
    return sum(counts) / seconds  # each enqueuer ran for exactly that long


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enqueuers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from django_durable.models import Run

    if connection.vendor != "postgresql":
        raise SystemExit("NOTIFY is PostgreSQL's: give a postgres:// DATABASE_URL")
    call_command("migrate", verbosity=0)
    rates: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(options.rounds):
        for notify in (True, False):
            Run.objects.all().delete()
            rate = round_rate(notify, options.enqueuers, options.seconds)
            rates[notify].append(rate)
            state = "on " if notify else "off"
            print(f"{options.enqueuers} enqueuers, NOTIFY {state}: {rate:,.0f} runs/s")
    on, off = (statistics.fmean(rates[state]) for state in (True, False))
    print(f"mean: on {on:,.0f} runs/s, off {off:,.0f} runs/s; on / off = {on / off:.2f}")
    Run.objects.all().delete()


if __name__ == "__main__":
    main()
