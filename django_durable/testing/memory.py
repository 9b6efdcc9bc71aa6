"""``InMemoryStorage``: the storage protocol in plain Python objects, for tests with no
database.

It keeps the rules of the database storages (the conformance suite in
``django_durable.testing.conformance`` checks both alike): fencing by lease token, the
claim order, concurrency keys, leases and wake times judged by one clock. That clock is
its own (``storage.clock``): ``storage.advance(seconds)`` moves leases, wake times and
deadlines forward without sleeping.

One lock guards every table. ``storage.atomic()`` is its transaction: the tables are
restored if the block raises, and ``on_commit`` callbacks run when the outermost block
commits. Atomic steps run inside one, so their effects roll back as in a database.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from ..conf import durable_settings
from ..exceptions import RunFinished, RunNotFound
from ..status import FINISHED_STATUSES, RunStatus
from ..storage.base import (
    Checkpoint,
    ClaimedRun,
    Heartbeat,
    Lease,
    LogRecord,
    NewRun,
    RunRecord,
    StaleSweep,
    StepRecord,
    Storage,
    WorkerInfo,
)
from .memory_fenced import MemoryAtomicStep, MemoryFencedTransaction
from .memory_fork import fork_tables
from .memory_state import Clock, EventRow, RunRow, Tables

__all__ = ["Clock", "InMemoryStorage"]

T = TypeVar("T")


class InMemoryStorage:
    """Everything the engine needs from a database, in this process's memory."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._tables = Tables()
        self._lock = threading.RLock()
        self._depth = 0
        # (transaction depth that registered it, callback)
        self._on_commit: list[tuple[int, Callable[[], object]]] = []

    # -- the clock and transactions -----------------------------------------------------

    def advance(self, seconds: float | timedelta) -> None:
        """Move the storage's clock forward: leases expire, wake times and deadlines pass."""
        self.clock.advance(seconds)

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction: everything written inside is undone if the block raises.

        Blocks nest like savepoints. The lock is held throughout, so other threads wait
        for the block to end, as they would for a database's row locks.
        """
        with self._lock:
            saved = self._tables.copy()
            self._depth += 1
            level = self._depth
            try:
                yield
            except BaseException:
                self._tables.restore(saved)
                self._on_commit = [(d, cb) for d, cb in self._on_commit if d < level]
                raise
            finally:
                self._depth -= 1
            if level > 1:  # a savepoint: its callbacks now belong to the enclosing block
                self._on_commit = [(min(d, level - 1), cb) for d, cb in self._on_commit]
                return
            callbacks, self._on_commit = [cb for _, cb in self._on_commit], []
        for callback in callbacks:
            callback()

    def on_commit(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the enclosing ``atomic()`` commits (at once outside one)."""
        with self._lock:
            if self._depth:
                self._on_commit.append((self._depth, callback))
                return
        callback()

    # -- enqueue and lookups -------------------------------------------------------------

    def enqueue(self, new: NewRun) -> tuple[RunRecord, bool]:
        with self.atomic():
            if new.idempotency_key is not None:
                existing = self._tables.by_idempotency_key(new.job_name, new.idempotency_key)
                if existing is not None:
                    return existing.record(), False
            return self._tables.insert(new, self.now()).record(), True

    def enqueue_many(self, news: Sequence[NewRun]) -> list[RunRecord]:
        with self.atomic():
            return [self._tables.insert(new, self.now()).record() for new in news]

    def get_run(self, run_id: uuid.UUID) -> RunRecord | None:
        with self._lock:
            row = self._tables.runs.get(run_id)
            return None if row is None else row.record()

    def runs(self) -> list[RunRecord]:
        """Every run, oldest first (for tests: there are no tables to query)."""
        with self._lock:
            return [row.record() for row in sorted(self._tables.runs.values(), key=_by_id)]

    def load_journal(self, run_id: uuid.UUID) -> list[StepRecord]:
        with self._lock:
            journal = self._tables.steps.get(run_id, {})
            return [copy.deepcopy(journal[position]) for position in sorted(journal)]

    def unclaimable_job_names(self, known: Collection[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for row in self._tables.runs.values():
                if row.status == RunStatus.PENDING and row.job_name not in known:
                    counts[row.job_name] = counts.get(row.job_name, 0) + 1
        return dict(sorted(counts.items()))

    # -- claiming ------------------------------------------------------------------------

    def claim(
        self,
        *,
        owner: str,
        job_names: Collection[str],
        queues: Sequence[str] | None,
        limit: int,
        timeouts: Mapping[str, float] | None = None,
    ) -> list[ClaimedRun]:
        if not job_names or limit < 1:
            return []
        token, timeouts = uuid.uuid4(), timeouts or {}
        claimed: list[ClaimedRun] = []
        with self.atomic():
            now, tables = self.now(), self._tables
            for row in tables.candidates(RunStatus.PENDING, job_names, queues):
                if len(claimed) == limit:
                    break
                if not tables.key_is_free(row):  # an earlier run of this batch took it
                    continue
                if row.concurrency_key is not None:
                    tables.slots[row.concurrency_key] = row.id
                fresh = row.started_at is None and row.forked_from is None
                row.status, row.started_at = RunStatus.RUNNING, row.started_at or now
                row.lease_owner, row.lease_token = owner, token
                row.lease_expires_at = self._lease_expiry(now)
                if row.deadline is None and row.job_name in timeouts:
                    row.deadline = now + timedelta(seconds=timeouts[row.job_name])
                time_left = None
                if row.deadline is not None:
                    time_left = (row.deadline - now).total_seconds()
                lease = Lease.taken(row, token=token, owner=owner)
                claimed.append(
                    ClaimedRun(run=row.record(), lease=lease, fresh=fresh, time_left=time_left)
                )
        return claimed

    def has_claimable_runs(
        self, *, job_names: Collection[str], queues: Sequence[str] | None
    ) -> bool:
        if not job_names:
            return False
        with self._lock:
            if self._tables.candidates(RunStatus.PENDING, job_names, queues):
                return True
            now = self.now()
            waiting = self._tables.candidates(RunStatus.WAITING, job_names, queues)
            return any(row.wake_at is not None and row.wake_at <= now for row in waiting)

    @staticmethod
    def _lease_expiry(now: datetime) -> datetime:
        return now + timedelta(seconds=durable_settings.STALE_AFTER)

    # -- fenced writes by the lease holder -------------------------------------------------

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        with self.atomic():
            self._tables.write(self._tables.fence(lease, check_cancel=True), checkpoint)

    @contextmanager
    def fenced_transaction(self, lease: Lease) -> Iterator[MemoryFencedTransaction]:
        with self.atomic():
            self._tables.fence(lease, check_cancel=True)
            yield MemoryFencedTransaction(self._tables, self.clock, lease)

    # Nothing here holds anything but the one lock, which heartbeats wait for briefly.
    transactions_hold_database = False

    @contextmanager
    def atomic_step(
        self, lease: Lease, *, renew: Collection[uuid.UUID] = ()
    ) -> Iterator[MemoryAtomicStep]:
        with self.atomic():
            self._tables.fence(lease, check_cancel=True)
            yield MemoryAtomicStep(self._tables, lease, self._lease_expiry(self.now()))

    def discard_connection(self) -> None:
        """No connection to discard."""

    def complete(self, lease: Lease, output: Any, checkpoint: Checkpoint) -> None:
        with self.atomic():
            row = self._tables.fence(lease)
            self._tables.write(row, checkpoint)
            self._tables.end(row, RunStatus.COMPLETED, self.now(), output=output)

    def together(self, operation: Callable[[], T], *, completing: Sequence[Lease] = ()) -> T:
        with self.atomic():
            return operation()

    def fail(
        self,
        lease: Lease,
        *,
        errors: list[dict[str, Any]],
        checkpoint: Checkpoint,
        retry_delay: float | None,
    ) -> None:
        with self.atomic():
            row = self._tables.fence(lease)
            self._tables.write(row, checkpoint)
            if retry_delay is None:
                self._tables.end(row, RunStatus.FAILED, self.now(), errors=errors)
                return
            row.errors, row.waiting_for = errors, None
            row.attempt += 1
            row.clear_lease()
            if retry_delay <= 0:
                row.status = RunStatus.PENDING
            else:  # the run keeps its key slot while it waits for its next attempt
                row.status = RunStatus.WAITING
                row.wake_at = self.now() + timedelta(seconds=retry_delay)

    def release(self, lease: Lease, checkpoint: Checkpoint) -> None:
        with self.atomic():
            row = self._tables.fence(lease)
            self._tables.write(row, checkpoint)
            row.status = RunStatus.PENDING
            row.clear_lease()

    def suspend(
        self,
        lease: Lease,
        checkpoint: Checkpoint,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None = None,
    ) -> None:
        with self.atomic():
            row = self._tables.fence(lease, check_cancel=True)
            self._tables.write(row, checkpoint)
            self._tables.park(row, wake_at, waiting_for)

    def finish_cancelled(self, lease: Lease, checkpoint: Checkpoint) -> None:
        with self.atomic():
            row = self._tables.fence(lease)
            self._tables.write(row, checkpoint)
            self._tables.end(row, RunStatus.CANCELLED, self.now())

    # -- operations from outside a run -----------------------------------------------------

    def _row(self, run_id: uuid.UUID) -> RunRow:
        row = self._tables.runs.get(run_id)
        if row is None:
            raise RunNotFound(f"no run with id {run_id}")
        return row

    def send_event(self, run_id: uuid.UUID, name: str, payload: Any) -> None:
        with self.atomic():
            row = self._row(run_id)
            if row.status in FINISHED_STATUSES:
                raise RunFinished(
                    f"run {run_id} is {row.status}; events can only be sent to unfinished runs"
                )
            event = EventRow(run_id=run_id, name=name, payload=copy.deepcopy(payload))
            self._tables.events.append(event)
            if row.status == RunStatus.WAITING and (row.waiting_for or {}).get("event") == name:
                self._tables.wake(row)

    def cancel(self, run_id: uuid.UUID) -> None:
        with self.atomic():
            self._row(run_id)
            self._tables.cancel_tree(run_id, self.now())

    def retry(self, run_id: uuid.UUID) -> None:
        with self.atomic():
            row = self._row(run_id)
            if row.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
                raise ValueError(
                    f"run {run_id} is {row.status}; only failed or cancelled runs retry"
                )
            self._again(row)

    def restart(self, run_id: uuid.UUID) -> None:
        with self.atomic():
            row = self._row(run_id)
            if row.status not in FINISHED_STATUSES:
                raise ValueError(
                    f"run {run_id} is {row.status}; only finished runs restart from scratch"
                )
            self._tables.steps.pop(run_id, None)
            for event in self._tables.events:
                if event.run_id == run_id:
                    event.consumed_at = None
            self._again(row)
            row.output = row.progress = row.started_at = None

    def fork(self, run_id: uuid.UUID, **options: Any) -> RunRecord:
        with self.atomic():
            return fork_tables(self._tables, run_id, self.now(), **options).record()

    @staticmethod
    def _again(row: RunRow) -> None:
        """Pending again as the next attempt; a new deadline comes with the next claim."""
        row.status, row.attempt, row.recoveries = RunStatus.PENDING, row.attempt + 1, 0
        row.deadline = row.finished_at = row.wake_at = row.waiting_for = None
        row.cancel_requested = False

    # -- housekeeping any worker does ------------------------------------------------------

    def heartbeat(self, owner: str, run_ids: Collection[uuid.UUID]) -> Heartbeat:
        renewed, cancel_requested = set(), set()
        with self.atomic():
            now = self.now()
            for run_id in set(run_ids):
                row = self._tables.runs.get(run_id)
                if row is None or row.status != RunStatus.RUNNING or row.lease_owner != owner:
                    continue
                row.lease_expires_at = self._lease_expiry(now)
                renewed.add(run_id)
                if row.cancel_requested:
                    cancel_requested.add(run_id)
        return Heartbeat(renewed=frozenset(renewed), cancel_requested=frozenset(cancel_requested))

    def recover_stale(self, *, max_recoveries: int, limit: int) -> StaleSweep:
        with self.atomic():
            return self._tables.recover_stale(self.now(), max_recoveries, limit)

    def fail_overdue(self, *, limit: int) -> list[uuid.UUID]:
        with self.atomic():
            return self._tables.fail_overdue(self.now(), limit)

    def promote_due(self, *, limit: int) -> int:
        with self.atomic():
            return self._tables.promote_due(self.now(), limit)

    def worker_seen(self, info: WorkerInfo) -> None:
        with self._lock:
            self._tables.workers[info.worker_id] = (info, self.now())

    def worker_stopped(self, worker_id: str) -> None:
        with self._lock:
            self._tables.workers.pop(worker_id, None)

    def logs(self, run_id: uuid.UUID) -> list[LogRecord]:
        """The run's ``ctx.log`` records, oldest first (for tests)."""
        with self._lock:
            return [log for logged, log in self._tables.logs if logged == run_id]

    def workers(self) -> dict[str, tuple[WorkerInfo, datetime]]:
        """Registered workers and when each was last seen (for tests)."""
        with self._lock:
            return dict(self._tables.workers)


def _by_id(row: RunRow) -> uuid.UUID:
    return row.id  # time-ordered ids: creation order


if TYPE_CHECKING:  # mypy checks here that the class has the whole protocol
    _conforms: type[Storage] = InMemoryStorage
