"""Waiting runs: events, child runs and the wake-ups that must never be lost.

A run moves to ``waiting`` inside a transaction that began by locking its row (the
fence). Senders of events, finishing children and cancellations lock the same row
before they look at it, so whichever comes second sees the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from ..exceptions import ChildRunMissing, RunFinished, RunNotFound
from ..malformed import report_malformed
from ..models import Run, RunEvent
from ..notify import announce
from ..status import FINISHED_STATUSES, RunStatus
from .base import Checkpoint, ChildState, Lease, NewRun
from .dbclock import DbNow
from .fenced import FencedWriter, storage_errors
from .leases import CLEAR_LEASE
from .lifecycle import read_awaited, wake
from .own_writes import own_transaction


def new_run_row(new: NewRun) -> Run:
    """The row to insert. Its times are database-clock expressions (the model's
    ``db_default`` for an immediate run), so the enqueuing host's clock is never used."""
    return Run(**new_run_columns(new))


def new_run_columns(new: NewRun) -> dict[str, Any]:
    """The column values of a new run's row; ``run_after`` and ``wake_at`` are there
    only for a run that waits for its time (a ``DbNow`` delay or a datetime)."""
    columns: dict[str, Any] = {
        "job_name": new.job_name,
        "queue_name": new.queue_name,
        "priority": new.priority,
        "args": new.args,
        "kwargs": new.kwargs,
        "idempotency_key": new.idempotency_key,
        "concurrency_key": new.concurrency_key,
        "parent_id": new.parent_id,
        "scheduled_at": new.scheduled_at,
        "trace_context": new.trace_context,
    }
    when: datetime | DbNow | None = None
    if isinstance(new.run_after, timedelta):
        if new.run_after > timedelta(0):
            when = DbNow(new.run_after.total_seconds())
    elif new.run_after is not None:
        when = new.run_after
    if when is not None:
        # Future or not, the database clock decides when it becomes runnable.
        columns.update(status=RunStatus.WAITING, run_after=when, wake_at=when)
    return columns


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
        awaited, problem = read_awaited(run, "event")
        if problem is not None:
            wake(alias, run)
            report_malformed(run.pk, problem, "woken")
        elif awaited == name:
            wake(alias, run)
