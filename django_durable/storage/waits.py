"""Waiting runs: events, child runs and the wake-ups that must never be lost.

A run moves to ``waiting`` inside a transaction that began by locking its row (the
fence). Senders of events, finishing children and cancellations lock the same row
before they look at it, so whichever comes second sees the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import F
from django.utils import timezone

from ..exceptions import ChildRunMissing, RunFinished, RunNotFound
from ..malformed import describe_stored, report_malformed
from ..models import ConcurrencySlot, Run, RunEvent, Step
from ..notify import announce
from ..status import FINISHED_STATUSES, RunStatus
from .base import Checkpoint, ChildState, Lease, NewRun
from .dbclock import DbNow
from .fenced import FencedWriter, storage_errors
from .own_writes import own_transaction
from .rows import one_row

CLEAR_LEASE = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def new_run_row(new: NewRun) -> Run:
    """The row to insert. Its times are database-clock expressions (the model's
    ``db_default`` for an immediate run), so the enqueuing host's clock is never used."""
    run = Run(
        job_name=new.job_name,
        queue_name=new.queue_name,
        priority=new.priority,
        args=new.args,
        kwargs=new.kwargs,
        idempotency_key=new.idempotency_key,
        concurrency_key=new.concurrency_key,
        parent_id=new.parent_id,
        scheduled_at=new.scheduled_at,
    )
    when: datetime | DbNow | None = None
    if isinstance(new.run_after, timedelta):
        if new.run_after > timedelta(0):
            when = DbNow(new.run_after.total_seconds())
    elif new.run_after is not None:
        when = new.run_after
    if when is not None:
        # Future or not, the database clock decides when it becomes runnable.
        run.status, run.run_after, run.wake_at = RunStatus.WAITING, when, when
    return run


def suspend_changes(
    checkpoint: Checkpoint, wake_at: datetime | None, waiting_for: dict[str, Any] | None
) -> dict[str, Any]:
    changes = {
        "status": RunStatus.WAITING,
        "wake_at": wake_at,
        "waiting_for": waiting_for,
        **CLEAR_LEASE,
    }
    if checkpoint.progress is not None:
        changes["progress"] = checkpoint.progress
    return changes


class FencedRunTransaction:
    """The ORM side of ``Storage.fenced_transaction``: the fence is already taken."""

    def __init__(self, alias: str, writer: FencedWriter, lease: Lease) -> None:
        self.alias = alias
        self.writer = writer
        self.lease = lease

    def write(self, checkpoint: Checkpoint) -> None:
        with storage_errors(self.lease):
            if checkpoint.progress is not None:
                Run.objects.using(self.alias).filter(pk=self.lease.run_id).update(
                    progress=checkpoint.progress
                )
            self.writer.insert(self.lease, checkpoint)

    # Each method is the library's own work inside the job's operation: a database error
    # here is a StorageError (the run is given up), never the job's failure.

    def take_event(self, name: str) -> tuple[bool, Any]:
        with storage_errors(self.lease):
            events = RunEvent.objects.using(self.alias).filter(
                run_id=self.lease.run_id, name=name, consumed_at__isnull=True
            )
            event = events.order_by("id").select_for_update().first()
            if event is None:
                return False, None
            RunEvent.objects.using(self.alias).filter(pk=event.pk).update(
                consumed_at=timezone.now()
            )
            return True, event.payload

    def children(self, ids: Sequence[uuid.UUID]) -> list[ChildState]:
        with storage_errors(self.lease):
            rows = list(
                Run.objects.using(self.alias)
                .filter(pk__in=list(ids))
                .values_list("pk", "status", "output", "errors")
            )
        found = {pk: (status, output, errors) for pk, status, output, errors in rows}
        missing = [str(child_id) for child_id in ids if child_id not in found]
        if missing:
            raise ChildRunMissing(
                f"child run(s) {', '.join(missing)} of run {self.lease.run_id} no longer "
                "exist: deleted while the parent was unfinished, so their outputs are lost"
            )
        return [
            ChildState(
                id=child_id,
                status=RunStatus(found[child_id][0]),
                output=found[child_id][1],
                error=(found[child_id][2] or [None])[-1],
            )
            for child_id in ids
        ]

    def create_runs(self, runs: Sequence[NewRun]) -> list[uuid.UUID]:
        rows = [new_run_row(new) for new in runs]
        with storage_errors(self.lease):
            Run.objects.using(self.alias).bulk_create(rows)
        announce(self.alias, {row.queue_name for row in rows if row.status == RunStatus.PENDING})
        return [row.pk for row in rows]

    def suspend(
        self,
        checkpoint: Checkpoint,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None,
    ) -> None:
        with storage_errors(self.lease):
            self.writer.fence(self.lease, suspend_changes(checkpoint, wake_at, waiting_for))
            self.writer.insert(self.lease, checkpoint)


def send_event(alias: str, run_id: uuid.UUID, name: str, payload: Any) -> None:
    with own_transaction(alias):
        run = (
            Run.objects.using(alias)
            .select_for_update()
            .filter(pk=run_id)
            .only("status", "waiting_for", "queue_name")
            .first()
        )
        if run is None:
            raise RunNotFound(f"no run with id {run_id}")
        if run.status in FINISHED_STATUSES:
            raise RunFinished(
                f"run {run_id} is {run.status}; events can only be sent to unfinished runs"
            )
        RunEvent.objects.using(alias).create(run_id=run_id, name=name, payload=payload)
        if run.status != RunStatus.WAITING:
            return
        awaited, problem = _awaited(run, "event")
        if problem is not None:
            wake(alias, run)
            report_malformed(run.pk, problem, "woken")
        elif awaited == name:
            wake(alias, run)


def wake(alias: str, run: Run) -> None:
    """Make a waiting run (whose row this transaction has locked) runnable now."""
    Run.objects.using(alias).filter(pk=run.pk, status=RunStatus.WAITING).update(
        status=RunStatus.PENDING, wake_at=None, waiting_for=None
    )
    announce(alias, [run.queue_name])


def wake_parent_if_ready(alias: str, parent_id: uuid.UUID) -> None:
    """Called by a finishing child, inside its own transaction.

    The parent's row is the parent's: whatever it holds, the child's end goes through.
    A parent whose ``waiting_for`` this version cannot read is reported and woken, and
    its replay finds out from its journal what it waits for.
    """
    one_row(
        alias,
        parent_id,
        lambda: _wake_parent_if_ready(alias, parent_id),
        settle=lambda problem: _wake_malformed(alias, parent_id),
    )


def _wake_parent_if_ready(alias: str, parent_id: uuid.UUID) -> None:
    # Lock the row whatever its status, and only then look at it: a status filter in
    # the WHERE would skip the row without waiting while the parent is still deciding
    # (running, holding its fence) and the wake-up would be lost.
    parent = (
        Run.objects.using(alias)
        .select_for_update()
        .filter(pk=parent_id)
        .only("status", "waiting_for", "queue_name")
        .first()
    )
    if parent is None or parent.status != RunStatus.WAITING:
        return
    awaited, problem = _awaited(parent, "children")
    if problem is not None:
        wake(alias, parent)
        report_malformed(parent.pk, problem, "woken")
        return
    if not awaited:
        return
    unfinished = (
        Run.objects.using(alias)
        .filter(pk__in=awaited)
        .exclude(status__in=FINISHED_STATUSES)
        .exists()
    )
    if not unfinished:
        wake(alias, parent)


def _awaited(run: Run, what: str) -> tuple[Any, str | None]:
    """What a waiting run's ``waiting_for`` says it waits for (``"event"``: a name,
    ``"children"``: run ids), or why it cannot be read. Waking a run is always safe,
    its replay parks it again, so a row that cannot be read is woken."""
    waiting_for = run.waiting_for
    if waiting_for is None:
        return None, None
    if not isinstance(waiting_for, dict):
        return None, f"waiting_for is {describe_stored(waiting_for)}, not an object"
    awaited = waiting_for.get(what)
    if what == "children" and awaited is not None:
        try:
            return [uuid.UUID(child_id) for child_id in awaited], None
        except (TypeError, ValueError, AttributeError):
            return None, f"waiting_for['children'] is {describe_stored(awaited)}, not run ids"
    return awaited, None


def _wake_malformed(alias: str, run_id: uuid.UUID) -> str:
    """The fallback when a parent's row broke the check: wake it, if it waits."""
    woken = Run.objects.using(alias).filter(pk=run_id, status=RunStatus.WAITING)
    queue_names = list(woken.values_list("queue_name", flat=True))
    if not woken.update(status=RunStatus.PENDING, wake_at=None, waiting_for=None):
        return "skipped"
    announce(alias, queue_names)
    return "woken"


def database_now(alias: str) -> datetime:
    from django.db.models.sql import Query

    from .dbclock import DbNow

    connection = connections[alias]
    expression = DbNow()
    sql, params = Query(Run).get_compiler(connection=connection).compile(expression)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        (value,) = cursor.fetchone()
    for converter in connection.ops.get_db_converters(expression):
        value = converter(value, expression, connection)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value  # type: ignore[no-any-return]


def cancel(alias: str, run_id: uuid.UUID) -> None:
    """Cancel a run and its unfinished descendants, in one transaction.

    Pending and waiting runs end at once; a running one gets a cancel request that its
    worker acts on at the next operation. Raises ``RunNotFound``.
    """
    with own_transaction(alias):
        if not Run.objects.using(alias).select_for_update().filter(pk=run_id).exists():
            raise RunNotFound(f"no run with id {run_id}")
        frontier = [run_id]
        while frontier:
            runs = list(
                Run.objects.using(alias)
                .select_for_update()
                .filter(pk__in=frontier)
                .exclude(status__in=FINISHED_STATUSES)
                .only("status", "parent_id", "concurrency_key")
            )
            idle = [run.pk for run in runs if run.status != RunStatus.RUNNING]
            Run.objects.using(alias).filter(pk__in=[run.pk for run in runs]).update(
                cancel_requested=True
            )
            Run.objects.using(alias).filter(pk__in=idle).update(
                status=RunStatus.CANCELLED,
                finished_at=timezone.now(),
                wake_at=None,
                waiting_for=None,
            )
            ConcurrencySlot.objects.using(alias).filter(run_id__in=idle).delete()
            frontier = list(
                Run.objects.using(alias)
                .filter(parent_id__in=[run.pk for run in runs])
                .exclude(status__in=FINISHED_STATUSES)
                .values_list("pk", flat=True)
            )
        root = Run.objects.using(alias).only("parent_id", "status").get(pk=run_id)
        if root.parent_id is not None and root.status == RunStatus.CANCELLED:
            wake_parent_if_ready(alias, root.parent_id)


def retry(alias: str, run_id: uuid.UUID) -> None:
    """Make a failed or cancelled run pending again as its next attempt."""
    with own_transaction(alias):
        run = (
            Run.objects.using(alias)
            .select_for_update()
            .filter(pk=run_id)
            .only("status", "queue_name")
            .first()
        )
        if run is None:
            raise RunNotFound(f"no run with id {run_id}")
        if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise ValueError(f"run {run_id} is {run.status}; only failed or cancelled runs retry")
        Run.objects.using(alias).filter(pk=run_id).update(
            status=RunStatus.PENDING,
            attempt=F("attempt") + 1,
            recoveries=0,
            deadline=None,  # a new attempt gets a new deadline when claimed
            finished_at=None,
            cancel_requested=False,
            wake_at=None,
            waiting_for=None,
        )
        announce(alias, [run.queue_name])


def restart(alias: str, run_id: uuid.UUID) -> None:
    """Clear a finished run's journal and make it pending again, as its next attempt.

    Every step runs again; events it consumed are back in its mailbox, so waits see them
    as the first execution did. Logs and the error history stay, tagged by attempt.
    """
    with own_transaction(alias):
        run = (
            Run.objects.using(alias)
            .select_for_update()
            .filter(pk=run_id)
            .only("status", "queue_name")
            .first()
        )
        if run is None:
            raise RunNotFound(f"no run with id {run_id}")
        if run.status not in FINISHED_STATUSES:
            raise ValueError(
                f"run {run_id} is {run.status}; only finished runs restart from scratch"
            )
        Step.objects.using(alias).filter(run_id=run_id).delete()
        RunEvent.objects.using(alias).filter(run_id=run_id).update(consumed_at=None)
        Run.objects.using(alias).filter(pk=run_id).update(
            status=RunStatus.PENDING,
            attempt=F("attempt") + 1,
            recoveries=0,
            output=None,
            progress=None,
            deadline=None,
            started_at=None,
            finished_at=None,
            cancel_requested=False,
            wake_at=None,
            waiting_for=None,
        )
        announce(alias, [run.queue_name])


def cancel_children(alias: str, parent_id: uuid.UUID) -> None:
    """A run that ended without completing takes its unfinished children with it."""
    children = (
        Run.objects.using(alias)
        .filter(parent_id=parent_id)
        .exclude(status__in=FINISHED_STATUSES)
        .values_list("pk", flat=True)
    )
    for child_id in list(children):
        cancel(alias, child_id)
