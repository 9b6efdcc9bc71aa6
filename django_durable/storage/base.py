"""The storage protocol and the plain records that cross it.

The engine (jobs, context, runner, worker) knows storage only through :class:`Storage`;
``orm.py`` implements it on the Django ORM and the conformance suite in
``django_durable.testing`` checks any implementation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from ..exceptions import StorageError
from ..status import RunStatus, StepKind, StepStatus

T = TypeVar("T")


class StorageBusy(StorageError):
    """The database gave up waiting for a lock, so the write changed nothing.

    The worker gives the run back (a fenced release) for another claim to take at once,
    rather than leaving it to a stale-lease recovery.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """What ``Job.enqueue`` asks storage to insert."""

    job_name: str
    queue_name: str
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    # An aware datetime, or a delay counted from the database clock at the insert.
    run_after: datetime | timedelta | None = None
    parent_id: uuid.UUID | None = None
    # The schedule tick starting this run (ctx.scheduled_at).
    scheduled_at: datetime | None = None
    # The enqueuer's trace context (tracing.py), continued by the worker.
    trace_context: dict[str, str] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    id: uuid.UUID
    job_name: str
    queue_name: str
    status: RunStatus
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    output: Any
    errors: list[dict[str, Any]]
    attempt: int
    recoveries: int
    idempotency_key: str | None
    concurrency_key: str | None
    run_after: datetime
    wake_at: datetime | None
    waiting_for: dict[str, Any] | None
    cancel_requested: bool
    deadline: datetime | None
    progress: dict[str, Any] | None
    parent_id: uuid.UUID | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    scheduled_at: datetime | None = None
    trace_context: dict[str, str] | None = None
    # The run this one was forked from (fork_run), whose journal it started with.
    forked_from: uuid.UUID | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """One claim of one run. Every write its holder makes is conditional on ``token``."""

    run_id: uuid.UUID
    token: uuid.UUID
    owner: str
    queue_name: str = "default"
    # The key whose slot this run holds; released when the run finishes.
    concurrency_key: str | None = None
    # A parent to wake, if it waits for this run, when the run finishes.
    parent_id: uuid.UUID | None = None

    @classmethod
    def taken(cls, run: Any, *, token: uuid.UUID, owner: str) -> Lease:
        """The lease a claim with ``token`` gives ``owner`` on ``run`` (a row or record)."""
        return cls(
            run_id=run.id,
            token=token,
            owner=owner,
            queue_name=run.queue_name,
            concurrency_key=run.concurrency_key,
            parent_id=run.parent_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedRun:
    run: RunRecord
    lease: Lease
    # True when the run never executed before and is no fork, so its journal is known
    # to be empty.
    fresh: bool
    # Seconds until the run's deadline at the claim, by the database clock (None: none).
    time_left: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    position: int
    kind: StepKind
    name: str
    status: StepStatus
    result: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 1
    run_attempt: int = 1
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    attempt: int
    level: int
    message: str
    created_at: datetime


@dataclass(slots=True, kw_only=True)
class Checkpoint:
    """Writes a run's owner has buffered; storage commits them together, fenced."""

    steps: list[StepRecord] = field(default_factory=list)
    # Positions in ``steps`` that overwrite an entry (a failed step retried by a later attempt).
    replacing: set[int] = field(default_factory=set)
    logs: list[LogRecord] = field(default_factory=list)
    progress: dict[str, Any] | None = None

    def __bool__(self) -> bool:
        return bool(self.steps or self.logs or self.progress is not None)

    def add(self, step: StepRecord, replacing: bool = False) -> None:
        self.steps.append(step)
        if replacing:
            self.replacing.add(step.position)

    def copy(self) -> Checkpoint:
        return Checkpoint(
            steps=list(self.steps),
            replacing=set(self.replacing),
            logs=list(self.logs),
            progress=self.progress,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    # The runs whose leases the database renewed; any other run the worker asked about is
    # no longer its own (taken over, finished, released) and must not be touched again.
    renewed: frozenset[uuid.UUID]
    # Runs among those heartbeated that someone asked to cancel.
    cancel_requested: frozenset[uuid.UUID]


@dataclass(frozen=True, slots=True, kw_only=True)
class StaleSweep:
    """What one pass over expired leases did."""

    requeued: list[uuid.UUID]
    failed: list[uuid.UUID]
    # Expired runs that had a cancel request: cancelled rather than retried.
    cancelled: list[uuid.UUID] = field(default_factory=list)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildState:
    id: uuid.UUID
    status: RunStatus
    output: Any
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """What the registry of live workers records about a ``runworker`` process."""

    worker_id: str
    hostname: str
    pid: int
    queues: list[str] | None  # None: every queue
    jobs: list[str]
    concurrency: int


class FencedTransaction(Protocol):
    """One transaction that began by locking the run for its lease holder.

    Event senders and finishing children lock the same row, so whichever comes second
    sees what the other did: no wake-up is lost.
    """

    def write(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` inside the already-fenced transaction."""

    def take_event(self, name: str) -> tuple[bool, Any]:
        """Consume the oldest unconsumed event ``name``: ``(True, payload)``, or
        ``(False, None)`` when none has arrived."""

    def children(self, ids: Sequence[uuid.UUID]) -> list[ChildState]:
        """The current state of these child runs, in the given order."""

    def create_runs(self, runs: Sequence[NewRun]) -> list[uuid.UUID]:
        """Insert child runs (they become visible when this transaction commits)."""

    def suspend(
        self,
        checkpoint: Checkpoint,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None,
    ) -> None:
        """Write ``checkpoint`` and park the run as waiting, giving up the lease."""


class AtomicStepTransaction(Protocol):
    """The transaction an ``atomic=True`` step's function runs in, fenced at its start."""

    def write(self, checkpoint: Checkpoint) -> frozenset[uuid.UUID]:
        """Write ``checkpoint`` and renew the run's lease (where the transaction holds the
        whole database, also the leases of ``renew``); return the runs whose leases this
        transaction renews when it commits."""


class Storage(Protocol):
    """Everything the engine needs from a database. Fenced methods raise ``LeaseLost``,
    and ``StorageError`` when the database fails: never a plain database error, which a
    job's code would take for its own."""

    def enqueue(self, new: NewRun) -> tuple[RunRecord, bool]:
        """Insert a run in the caller's transaction; ``(existing, False)`` on a duplicate
        idempotency key, without breaking the caller's transaction. Times come from the
        database clock: ``run_after`` of an immediate run is the insert's time, and a
        ``timedelta`` ``run_after`` counts from it."""

    def enqueue_many(self, news: Sequence[NewRun]) -> list[RunRecord]:
        """Insert runs without idempotency keys in the caller's transaction, all or none,
        in as few statements as the database allows; their records in order."""

    def get_run(self, run_id: uuid.UUID) -> RunRecord | None: ...

    def claim(
        self,
        *,
        owner: str,
        job_names: Collection[str],
        queues: Sequence[str] | None,
        limit: int,
        timeouts: Mapping[str, float] | None = None,
    ) -> list[ClaimedRun]:
        """Lease up to ``limit`` pending runs of ``job_names`` (any queue when ``queues`` is
        None), highest priority first, then by ``run_after``, then by id. A run of a job
        in ``timeouts`` (seconds) gets its deadline when first claimed."""

    def has_claimable_runs(
        self, *, job_names: Collection[str], queues: Sequence[str] | None
    ) -> bool:
        """Whether ``claim`` with these job names and queues could take a run now: one is
        pending with its concurrency key free, or waiting with its wake time passed (by
        the database clock). ``runworker --burst`` exits only when it is False."""

    def load_journal(self, run_id: uuid.UUID) -> list[StepRecord]:
        """The whole journal in position order, in one query; ``StorageError`` when the
        database fails."""

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None: ...

    def fenced_transaction(self, lease: Lease) -> AbstractContextManager[FencedTransaction]:
        """A transaction that starts with the fencing update; for waits and child runs."""

    @property
    def transactions_hold_database(self) -> bool:
        """True where a write transaction holds the whole database (SQLite): while an
        atomic step's transaction is open nothing else can write, heartbeats included."""

    def atomic_step(
        self, lease: Lease, *, renew: Collection[uuid.UUID] = ()
    ) -> AbstractContextManager[AtomicStepTransaction]:
        """The fenced transaction of an atomic step, limited to ``ATOMIC_STEP_TIMEOUT``
        where the database can end it. Database errors are raised as they are: the
        caller knows whether they came from the job's function or from our writes."""

    def discard_connection(self) -> None:
        """Close this thread's connection (after an error that may have broken it)."""

    def complete(self, lease: Lease, output: Any, checkpoint: Checkpoint) -> None: ...

    def together(self, operation: Callable[[], T], *, completing: Sequence[Lease] = ()) -> T:
        """``operation``'s writes (a ``claim`` and the ``complete`` of each lease in
        ``completing``) as one transaction: all of them, or none when it raises. A
        ``LeaseLost`` caught inside leaves the transaction intact. What those completions
        lock before their own runs (their parents) is locked first, in the order every
        other writer takes it."""

    def suspend(
        self,
        lease: Lease,
        checkpoint: Checkpoint,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None = None,
    ) -> None:
        """Write ``checkpoint`` and park the run as waiting until ``wake_at`` (or until
        what ``waiting_for`` names arrives), giving up the lease."""

    def now(self) -> datetime:
        """The database's clock; ``StorageError`` when the database fails (it is read
        inside a job's durable operations, whose storage errors are never the job's)."""

    def send_event(self, run_id: uuid.UUID, name: str, payload: Any) -> None:
        """Store an event for the run and wake it if it waits for that name; ``RunNotFound``
        for an unknown run, ``RunFinished`` for a finished one."""

    def fail(
        self,
        lease: Lease,
        *,
        errors: list[dict[str, Any]],
        checkpoint: Checkpoint,
        retry_delay: float | None,
    ) -> None:
        """Store ``errors`` (the run's full error list); fail the run when ``retry_delay`` is
        None, otherwise schedule the next attempt after that many seconds."""

    def release(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """Give the run back as pending (graceful shutdown); not a recovery."""

    def heartbeat(self, owner: str, run_ids: Collection[uuid.UUID]) -> Heartbeat:
        """Renew, in one statement, the leases ``owner`` still holds on ``run_ids``; report
        which runs were renewed and which of those have a cancel request. Runs a worker
        gave up on are left out, so their leases expire."""

    def finish_cancelled(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """End a running run whose cancel request the worker acted on."""

    def cancel(self, run_id: uuid.UUID) -> None:
        """Cancel a run and its unfinished children (see ``cancel_run``)."""

    def retry(self, run_id: uuid.UUID) -> None:
        """Make a failed or cancelled run pending again as its next attempt."""

    def restart(self, run_id: uuid.UUID) -> None:
        """Clear a finished run's journal and make it pending again as its next attempt."""

    def fork(
        self,
        run_id: uuid.UUID,
        *,
        from_step: int | str | None,
        args: list[Any],
        kwargs: dict[str, Any],
    ) -> RunRecord:
        """Insert a pending run of a finished run's job, with ``args`` and ``kwargs``, whose
        journal is a copy of the old one's before ``from_step`` (rules in ``fork_plan.py``),
        and a copy of its events, those the copied entries consumed still consumed; all in
        one transaction, the old run untouched. ``RunNotFound``, ``ValueError`` (an
        unfinished run, a position out of range, an unknown name, an unfinished reused
        child), ``TypeError`` (a ``from_step`` of another type); nothing is written then."""

    def recover_stale(self, *, max_recoveries: int, limit: int) -> StaleSweep:
        """Requeue runs whose lease expired (by the database clock); fail those that already
        used up ``max_recoveries``."""

    def fail_overdue(self, *, limit: int) -> list[uuid.UUID]:
        """Fail waiting runs whose deadline passed (by the database clock), and running
        ones whose lease expired too (their worker is stuck); their children are
        cancelled. A live worker fails its own overdue run at its next operation, so the
        run's concurrency key is never freed while a step of it still executes."""

    def promote_due(self, *, limit: int) -> int:
        """Make waiting runs whose wake time has passed pending again."""

    def worker_seen(self, info: WorkerInfo) -> None:
        """Register a worker, or record that it is still alive (by the database clock)."""

    def worker_stopped(self, worker_id: str) -> None:
        """Remove a worker that is exiting from the registry."""

    def unclaimable_job_names(self, known: Collection[str]) -> dict[str, int]:
        """Pending runs per job name for jobs not in ``known`` (a rolling deploy)."""
