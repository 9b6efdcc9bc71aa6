"""``manage.py prune_runs``: delete finished runs past their retention, now."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...conf import durable_settings
from ...durations import parse_age
from ...jobs import job_retention_policies
from ...retention import FINISHED
from ...storage import get_storage
from ...storage.prune import Pruned, Pruning, prune_batch

PROGRESS_EVERY = 5.0  # seconds between progress lines of a long prune


def add_prune_arguments(parser: CommandParser) -> None:
    """The options of ``prune_runs``, which ``durable prune`` takes too."""
    parser.add_argument(
        "--older-than",
        help="Prune runs finished longer ago than this (90s, 15m, 1h, 7d), whatever "
        "their retention says.",
    )
    parser.add_argument(
        "--status",
        default=",".join(FINISHED),
        help="Comma-separated finished statuses to prune (default: all three).",
    )
    parser.add_argument("--job", help="Only families whose root run is of this job.")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help='Root runs per transaction (default DURABLE["PRUNE_BATCH_SIZE"]).',
    )
    parser.add_argument(
        "--pause",
        type=float,
        default=0.0,
        help="Seconds to wait between batches, leaving the database to the workers "
        "(default 0: batch after batch).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="Count what would go; delete nothing."
    )


def prune(options: dict[str, Any], progress: Callable[[str], None]) -> tuple[Pruned, float]:
    """Prune as the options say, batch after batch; what went and how long it took.
    Bad options are a ``CommandError`` with exit code 2, before anything is deleted."""
    pruning = _pruning(options)
    batch_size = options["batch_size"]
    if batch_size is None:
        batch_size = durable_settings.PRUNE_BATCH_SIZE
    if batch_size < 1:
        raise CommandError(f"--batch-size must be 1 or more, got {batch_size}", returncode=2)
    pause = options["pause"]
    if not 0 <= pause < math.inf:  # refuses nan too
        raise CommandError(f"--pause must be 0 or more seconds, got {pause}", returncode=2)
    alias, now = durable_settings.DATABASE, get_storage().now()
    total, started = Pruned(), time.monotonic()
    next_progress = started + PROGRESS_EVERY
    while not pruning.done:
        total.add(
            prune_batch(alias, pruning, now=now, batch_size=batch_size, dry_run=options["dry_run"])
        )
        if pruning.done:
            break
        time.sleep(pause)
        if time.monotonic() >= next_progress:
            rate = total.runs / (time.monotonic() - started)
            progress(f"... {total.runs} runs so far ({rate:.0f} runs/s)")
            next_progress = time.monotonic() + PROGRESS_EVERY
    return total, time.monotonic() - started


def summary(total: Pruned, seconds: float, *, dry_run: bool) -> str:
    verb = "Would delete" if dry_run else "Deleted"
    return (
        f"{verb} {total.runs} runs ({total.steps} journal entries, {total.logs} log "
        f"lines, {total.events} events) in {seconds:.1f}s."
    )


def _pruning(options: dict[str, Any]) -> Pruning:
    statuses = [status.strip() for status in options["status"].split(",") if status.strip()]
    unknown = [status for status in statuses if status not in FINISHED]
    if unknown or not statuses:
        raise CommandError(
            f"--status takes finished statuses ({', '.join(FINISHED)}), got {options['status']!r}",
            returncode=2,
        )
    if options["older_than"] is None:
        project = durable_settings.RETENTION
        return Pruning(
            default=project,
            jobs=job_retention_policies(project),
            statuses=statuses,
            job_name=options["job"],
        )
    try:
        age = parse_age(options["older_than"])
    except ValueError as error:
        raise CommandError(f"--older-than: {error}", returncode=2) from None
    return Pruning(default=dict.fromkeys(FINISHED, age), statuses=statuses, job_name=options["job"])


class Command(BaseCommand):
    help = (
        "Delete finished runs (whole families: a root run and its descendants) past "
        'their retention (DURABLE["RETENTION"] and @job(retention=...)), in batches.'
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_prune_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        total, seconds = prune(options, self.stdout.write)
        self.stdout.write(summary(total, seconds, dry_run=options["dry_run"]))
