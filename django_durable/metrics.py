"""What the metrics view reports, read from the database in five indexed queries.

Computed from the tables, not from counters in worker processes, so the numbers are right
however many workers run, and a worker that died takes nothing with it. Every query reads
only unfinished runs, or runs finished in the last minute, through an index; totals of
finished runs are left out on purpose: counting them walks an index entry per run ever
kept (see docs/guides/operations.md), and what an alert wants is the recent rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Min, Q

from .models import Run, RunQuerySet, Worker
from .status import FINISHED_STATUSES, RunStatus
from .storage.dbclock import DbNow, database_now

UNFINISHED = (RunStatus.PENDING.value, RunStatus.RUNNING.value, RunStatus.WAITING.value)
# The window of durable_runs_finished_last_minute, in seconds.
RECENT = 60.0

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Metric:
    """One gauge: its name, its help line and a value per label set."""

    name: str
    help: str
    samples: dict[Labels, float] = field(default_factory=dict)


def collect(alias: str) -> list[Metric]:
    """Every metric, read from the ``alias`` database."""
    runs: RunQuerySet = Run.objects.using(alias)
    now = database_now(alias)
    runs_gauge = Metric(name="durable_runs", help="Unfinished runs by status and queue.")
    oldest = Metric(
        name="durable_oldest_pending_age_seconds",
        help="Age of the oldest pending run per queue whose run_after has passed.",
    )
    unserved = Metric(
        name="durable_runs_unserved",
        help="Pending runs in a queue that no live worker takes runs from.",
    )
    workers_gauge = Metric(name="durable_workers", help="Live workers (seen within STALE_AFTER).")
    slots = Metric(name="durable_worker_slots", help="Runs a live worker executes at once.")
    busy = Metric(name="durable_worker_busy_slots", help="Runs a live worker executes now.")
    finished = Metric(
        name="durable_runs_finished_last_minute",
        help="Runs finished in the last 60 seconds by status and queue.",
    )

    pending = _pending(runs, now)
    live = list(
        Worker.objects.using(alias).live().values_list("worker_id", "concurrency", "queues")
    )
    listened = {queue for _, _, queues in live for queue in queues or ()}
    every_queue = any(queues is None for _, _, queues in live)
    for queue, (count, age) in pending.items():
        labels = (("queue", queue),)
        runs_gauge.samples[(("queue", queue), ("status", RunStatus.PENDING))] = count
        if age is not None:
            oldest.samples[labels] = age
        unserved.samples[labels] = 0 if every_queue or queue in listened else count

    busy_by_worker: dict[str, int] = defaultdict(int)
    for status, queue, owner, count in (
        runs.filter(status__in=(RunStatus.RUNNING, RunStatus.WAITING))
        .values_list("status", "queue_name", "lease_owner")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        key = (("queue", queue), ("status", status))
        runs_gauge.samples[key] = runs_gauge.samples.get(key, 0) + count
        if status == RunStatus.RUNNING and owner is not None:
            busy_by_worker[owner] += count
    _fill_zeros(runs_gauge, UNFINISHED)

    workers_gauge.samples[()] = len(live)
    for worker_id, concurrency, _ in live:
        slots.samples[(("worker", worker_id),)] = concurrency
        busy.samples[(("worker", worker_id),)] = busy_by_worker.get(worker_id, 0)

    for status, queue, count in (
        runs.finished()
        .filter(finished_at__gte=DbNow(-RECENT))
        .values_list("status", "queue_name")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        finished.samples[(("queue", queue), ("status", status))] = count
    _fill_zeros(finished, sorted(status.value for status in FINISHED_STATUSES))
    return [runs_gauge, oldest, unserved, workers_gauge, slots, busy, finished]


def _pending(runs: RunQuerySet, now: datetime) -> dict[str, tuple[int, float | None]]:
    """Per queue: pending runs, and the age of the oldest one due (``None``: none due).

    Every column read is in the claim index, so this is an index-only scan of the pending
    runs, however many finished runs the table holds.
    """
    rows = (
        runs.pending()
        .values_list("queue_name")
        .annotate(n=Count("pk"), oldest=Min("run_after", filter=Q(run_after__lte=DbNow())))
        .order_by()
    )
    return {
        queue: (count, None if due is None else max(0.0, (now - due).total_seconds()))
        for queue, count, due in rows
    }


def _fill_zeros(metric: Metric, statuses: Iterable[str]) -> None:
    """Give every queue seen a sample for each status, so a series drops to 0, not away."""
    queues = {dict(labels)["queue"] for labels in metric.samples}
    for status in statuses:
        for queue in queues:
            metric.samples.setdefault((("queue", queue), ("status", status)), 0)


def render(metrics: list[Metric]) -> str:
    """The Prometheus text exposition format (version 0.0.4): every metric a gauge."""
    lines: list[str] = []
    for metric in metrics:
        lines += [f"# HELP {metric.name} {metric.help}", f"# TYPE {metric.name} gauge"]
        for labels, value in sorted(metric.samples.items()):
            lines.append(f"{metric.name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels) + "}"


def _escape(value: str) -> str:
    # The three characters the format escapes in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
