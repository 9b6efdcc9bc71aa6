"""The tables behind :class:`~django_durable.testing.InMemoryStorage`, and its clock.

Plain mutable rows in dicts, with the rules that several storage methods share written
once here: the key-is-free condition, the claim order, waking runs, and ending runs
(which frees their key slots, wakes a waiting parent and cancels unfinished children).
The storage holds its one lock around every use of these tables.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from ..claim_order import claim_sort_key
from ..exceptions import LeaseLost, RunCancelled, StorageError
from ..ids import uuid7
from ..status import FINISHED_STATUSES, RunStatus
from ..storage.base import (
    Checkpoint,
    Lease,
    LogRecord,
    NewRun,
    RunRecord,
    StaleSweep,
    StepRecord,
    WorkerInfo,
)

_RECORD_FIELDS = tuple(f.name for f in fields(RunRecord))


class Clock:
    """The in-memory storage's "database clock": wall time plus every ``advance()``.

    Leases, wake times and deadlines are all judged by it, so a test moves them with
    ``advance(seconds)`` instead of sleeping; real sleeps still count as well.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset
        return datetime.now(UTC) + timedelta(seconds=offset)

    def seconds(self) -> float:
        """A monotonic reading of this clock (advances included), for timers."""
        with self._lock:
            return time.monotonic() + self._offset

    def advance(self, seconds: float | timedelta) -> None:
        """Move the clock forward by ``seconds`` (never backward)."""
        delta = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if delta < 0:
            raise ValueError(f"the clock only moves forward; advance({seconds!r}) goes back")
        with self._lock:
            self._offset += delta


@dataclass(slots=True, kw_only=True)
class RunRow:
    id: uuid.UUID
    job_name: str
    queue_name: str
    status: RunStatus
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    run_after: datetime
    created_at: datetime
    output: Any = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    attempt: int = 1
    recoveries: int = 0
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    wake_at: datetime | None = None
    waiting_for: dict[str, Any] | None = None
    cancel_requested: bool = False
    deadline: datetime | None = None
    progress: dict[str, Any] | None = None
    parent_id: uuid.UUID | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    scheduled_at: datetime | None = None
    trace_context: dict[str, str] | None = None
    forked_from: uuid.UUID | None = None
    lease_owner: str | None = None
    lease_token: uuid.UUID | None = None
    lease_expires_at: datetime | None = None

    def record(self) -> RunRecord:
        """A copy the caller cannot change the table through."""
        return RunRecord(**{name: copy.deepcopy(getattr(self, name)) for name in _RECORD_FIELDS})

    def claim_order(self) -> tuple[Any, ...]:
        return claim_sort_key(self)

    def clear_lease(self) -> None:
        self.lease_owner = self.lease_token = self.lease_expires_at = None

    def lease_expired(self, now: datetime) -> bool:
        expires = self.lease_expires_at
        return self.status == RunStatus.RUNNING and expires is not None and expires < now

    def error(self, kind: str, message: str) -> dict[str, Any]:
        """An entry of ``errors`` for an ending the library decided, not the job."""
        return {"attempt": self.attempt, "type": kind, "message": message, "traceback": ""}


@dataclass(slots=True, kw_only=True)
class EventRow:
    run_id: uuid.UUID
    name: str
    payload: Any
    consumed_at: datetime | None = None


@dataclass(slots=True)
class Tables:
    """Every table of the storage; its methods are the rules several operations share."""

    runs: dict[uuid.UUID, RunRow] = field(default_factory=dict)
    # run id -> position -> entry
    steps: dict[uuid.UUID, dict[int, StepRecord]] = field(default_factory=dict)
    logs: list[tuple[uuid.UUID, LogRecord]] = field(default_factory=list)
    events: list[EventRow] = field(default_factory=list)
    # concurrency key -> the run holding its slot
    slots: dict[str, uuid.UUID] = field(default_factory=dict)
    workers: dict[str, tuple[WorkerInfo, datetime]] = field(default_factory=dict)

    def copy(self) -> Tables:
        return copy.deepcopy(self)

    def restore(self, saved: Tables) -> None:
        """Put back a ``copy()`` in place (a rollback), so references stay valid."""
        for name in _TABLE_FIELDS:
            setattr(self, name, getattr(saved, name))

    # -- inserting -----------------------------------------------------------------------

    def insert(self, new: NewRun, now: datetime) -> RunRow:
        """A new run; a future (or explicit) ``run_after`` makes it wait until then."""
        row = RunRow(
            id=uuid7(),
            job_name=new.job_name,
            queue_name=new.queue_name,
            status=RunStatus.PENDING,
            priority=new.priority,
            args=copy.deepcopy(new.args),
            kwargs=copy.deepcopy(new.kwargs),
            run_after=now,
            created_at=now,
            idempotency_key=new.idempotency_key,
            concurrency_key=new.concurrency_key,
            parent_id=new.parent_id,
            scheduled_at=new.scheduled_at,
            trace_context=copy.deepcopy(new.trace_context),
        )
        when: datetime | None = None
        if isinstance(new.run_after, timedelta):
            if new.run_after > timedelta(0):
                when = now + new.run_after
        elif new.run_after is not None:
            when = new.run_after
        if when is not None:
            row.status, row.run_after, row.wake_at = RunStatus.WAITING, when, when
        self.runs[row.id] = row
        return row

    def by_idempotency_key(self, job_name: str, key: str) -> RunRow | None:
        for row in self.runs.values():
            if row.job_name == job_name and row.idempotency_key == key:
                return row
        return None

    # -- the rules shared by several methods ---------------------------------------------

    def key_is_free(self, row: RunRow) -> bool:
        """No other run holds the slot of ``row``'s concurrency key."""
        if row.concurrency_key is None:
            return True
        holder = self.slots.get(row.concurrency_key)
        return holder is None or holder == row.id

    def candidates(
        self, status: RunStatus, job_names: Iterable[str], queues: Iterable[str] | None
    ) -> list[RunRow]:
        """Runs of ``status`` a claim with these arguments may take, in claim order."""
        jobs = set(job_names)
        queue_set = None if queues is None else set(queues)
        rows = [
            row
            for row in self.runs.values()
            if row.status == status
            and row.job_name in jobs
            and (queue_set is None or row.queue_name in queue_set)
            and self.key_is_free(row)
        ]
        return sorted(rows, key=RunRow.claim_order)

    def wake(self, row: RunRow) -> None:
        """Make a waiting run runnable now."""
        if row.status == RunStatus.WAITING:
            row.status, row.wake_at, row.waiting_for = RunStatus.PENDING, None, None

    def wake_parent_if_ready(self, parent_id: uuid.UUID | None) -> None:
        """A child finished: wake its parent if that waits for children all finished."""
        parent = None if parent_id is None else self.runs.get(parent_id)
        if parent is None or parent.status != RunStatus.WAITING:
            return
        awaited = (parent.waiting_for or {}).get("children")
        if not awaited:
            return
        children = (self.runs.get(uuid.UUID(str(child_id))) for child_id in awaited)
        if all(child is None or child.status in FINISHED_STATUSES for child in children):
            self.wake(parent)

    def end(self, row: RunRow, status: RunStatus, now: datetime, **changes: Any) -> None:
        """End a run outside a lease or under one: every ending goes through here.

        It frees the run's key slot, wakes a parent waiting for it and, unless the run
        completed, cancels its unfinished children.
        """
        row.status, row.finished_at = status, now
        row.wake_at = row.waiting_for = None
        row.clear_lease()
        for name, value in changes.items():
            setattr(row, name, value)
        if row.concurrency_key is not None and self.slots.get(row.concurrency_key) == row.id:
            del self.slots[row.concurrency_key]  # the key's next run may start
        if status != RunStatus.COMPLETED:
            for child in self.unfinished_children([row.id]):
                self.cancel_tree(child.id, now)
        self.wake_parent_if_ready(row.parent_id)

    def unfinished_children(self, parent_ids: Iterable[uuid.UUID]) -> list[RunRow]:
        parents = set(parent_ids)
        return [
            row
            for row in self.runs.values()
            if row.parent_id in parents and row.status not in FINISHED_STATUSES
        ]

    def cancel_tree(self, run_id: uuid.UUID, now: datetime) -> None:
        """Cancel a run and its unfinished descendants: idle ones end at once, running
        ones get a cancel request that their worker acts on."""
        root = self.runs[run_id]
        frontier = [root] if root.status not in FINISHED_STATUSES else []
        while frontier:
            for row in frontier:
                row.cancel_requested = True
                if row.status != RunStatus.RUNNING:
                    self.end(row, RunStatus.CANCELLED, now)
            frontier = self.unfinished_children(row.id for row in frontier)

    # -- writes by a run's lease holder ------------------------------------------------

    def fence(self, lease: Lease, *, check_cancel: bool = False) -> RunRow:
        """The run, while ``lease`` still owns it; ``LeaseLost`` (or ``RunCancelled``)."""
        row = self.runs.get(lease.run_id)
        if row is None or row.lease_token != lease.token or row.status != RunStatus.RUNNING:
            raise LeaseLost(f"run {lease.run_id} is no longer leased by {lease.owner}")
        if check_cancel and row.cancel_requested:
            raise RunCancelled
        return row

    def write(self, row: RunRow, checkpoint: Checkpoint) -> None:
        """The checkpoint's progress, journal entries and logs (the run is fenced)."""
        if checkpoint.progress is not None:
            row.progress = checkpoint.progress
        journal = self.steps.setdefault(row.id, {})
        for entry in checkpoint.steps:
            if entry.position in journal and entry.position not in checkpoint.replacing:
                raise StorageError(
                    f"run {row.id}: journal position {entry.position} is already written"
                )
            journal[entry.position] = copy.deepcopy(entry)
        self.logs.extend((row.id, log) for log in checkpoint.logs)

    @staticmethod
    def park(row: RunRow, wake_at: datetime | None, waiting_for: dict[str, Any] | None) -> None:
        """Suspend a running run, giving up its lease (it keeps its key slot)."""
        row.status, row.wake_at, row.waiting_for = RunStatus.WAITING, wake_at, waiting_for
        row.clear_lease()

    # -- sweeps, by the clock's ``now`` --------------------------------------------------

    def recover_stale(self, now: datetime, max_recoveries: int, limit: int) -> StaleSweep:
        requeued, failed, cancelled = [], [], []
        expired = sorted(
            (
                row
                for row in self.runs.values()
                # A run past its deadline is left to fail_overdue, as in the ORM storage.
                if row.lease_expired(now) and not (row.deadline is not None and row.deadline < now)
            ),
            key=lambda row: (row.lease_expires_at, row.id),
        )[:limit]
        for row in expired:
            if row.cancel_requested:
                self.end(row, RunStatus.CANCELLED, now)
                cancelled.append(row.id)
            elif row.recoveries >= max_recoveries:
                lost = row.error(
                    "django_durable.WorkerLost",
                    f"the run's worker stopped heartbeating {row.recoveries + 1} times "
                    f"(DURABLE['MAX_RECOVERIES'] is {max_recoveries})",
                )
                self.end(row, RunStatus.FAILED, now, errors=[*row.errors, lost])
                failed.append(row.id)
            else:
                row.status, row.recoveries = RunStatus.PENDING, row.recoveries + 1
                row.clear_lease()
                requeued.append(row.id)
        return StaleSweep(requeued=requeued, failed=failed, cancelled=cancelled)

    def fail_overdue(self, now: datetime, limit: int) -> list[uuid.UUID]:
        overdue = sorted(
            (
                row
                for row in self.runs.values()
                if row.deadline is not None
                and row.deadline < now
                # A live worker fails its own overdue run, and only then frees its key.
                and (row.status == RunStatus.WAITING or row.lease_expired(now))
            ),
            key=lambda row: (row.deadline, row.id),
        )[:limit]
        for row in overdue:
            timed_out = row.error(
                "django_durable.exceptions.RunTimedOut",
                f"the run's deadline {row.deadline} passed",
            )
            self.end(row, RunStatus.FAILED, now, errors=[*row.errors, timed_out])
        return [row.id for row in overdue]

    def promote_due(self, now: datetime, limit: int) -> int:
        due = sorted(
            (
                row
                for row in self.runs.values()
                if row.status == RunStatus.WAITING and row.wake_at is not None
                if row.wake_at <= now
            ),
            key=lambda row: (row.wake_at, row.id),
        )[:limit]
        for row in due:
            self.wake(row)
        return len(due)


_TABLE_FIELDS = tuple(f.name for f in fields(Tables))
