"""The storage protocol on the Django ORM: the portable code, and the base of each
vendor's class (``sqlite/``, ``mysql/``, ``postgresql/``), which ``storage_class()``
chooses."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, TypeVar

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
    transaction,
)
from django.db.models import F, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..exceptions import StorageError
from ..models import Run, Step
from ..notify import announce
from ..status import RunStatus
from . import leases, sweeps
from .atomic_steps import ORMAtomicStep, atomic_step_transaction
from .base import (
    Checkpoint,
    ClaimedRun,
    Heartbeat,
    Lease,
    NewRun,
    RunRecord,
    StaleSweep,
    StepRecord,
    WorkerInfo,
)
from .claim import claim_runs, claimable_exists, unclaimable_job_names
from .convert import run_record, step_record
from .dbclock import DbNow, database_now
from .fenced import FencedWriter, storage_errors
from .forks import fork as fork_rows
from .leases import CLEAR_LEASE
from .lifecycle import Ending, cancel, ended, lock_parents, restart, retry
from .own_writes import own_transaction, own_write, own_write_method, storage_error
from .prune import Pruned, delete_rows
from .waits import FencedRunTransaction, new_run_row, send_event, suspend_changes
from .workers import worker_seen, worker_stopped

T = TypeVar("T")


class ORMStorage:
    """Storage on one database alias (``DURABLE["DATABASE"]``)."""

    # What differs by database: each vendor's subclass (``sqlite/``, ``mysql/``,
    # ``postgresql/``) sets these, and shared code asks them, never the vendor.
    writer_class: type[FencedWriter] = FencedWriter
    # A write transaction holds the whole database (SQLite).
    transactions_hold_database = False
    # Runs made runnable are announced with NOTIFY, and workers can LISTEN (PostgreSQL).
    notifies = False

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._fenced = self.writer_class(alias)

    @staticmethod
    def begin_transaction(alias: str) -> AbstractContextManager[None]:
        """A new transaction of the library's own (not nested): Django's, as configured."""
        return transaction.atomic(using=alias)

    def session_limits(self) -> Callable[[float | None], None] | None:
        """Where the database ends a transaction after a time limit only through session
        settings (MariaDB): a function that sets them (None: resets them)."""
        return None

    def estimated_rows(self, tables: list[str]) -> dict[str, int] | None:
        """Rows per table from the server's statistics, cheap however large the tables;
        None where counting is cheap enough (or no estimate exists)."""
        return None

    def id_list(self, ids: list[uuid.UUID]) -> list[uuid.UUID] | RawSQL:
        """``ids`` as the right-hand side of an ``__in`` lookup on a UUID column."""
        return ids

    # -- helpers -----------------------------------------------------------------------

    def _runs(self) -> QuerySet[Run]:
        return Run.objects.using(self.alias)

    @staticmethod
    def _progress(checkpoint: Checkpoint) -> dict[str, Any]:
        return {} if checkpoint.progress is None else {"progress": checkpoint.progress}

    # -- enqueue and lookups -------------------------------------------------------------

    # Outside a caller's transaction, run again if SQLite stayed locked past its timeout.
    @own_write_method(atomic=False)
    def enqueue(self, new: NewRun) -> tuple[RunRecord, bool]:
        run = new_run_row(new)
        if new.idempotency_key is None:
            run.save(using=self.alias, force_insert=True)
        else:
            try:
                # A savepoint, so a duplicate key leaves the caller's transaction usable.
                with transaction.atomic(using=self.alias):
                    run.save(using=self.alias, force_insert=True)
            except IntegrityError:
                existing = (
                    self._runs()
                    .filter(job_name=new.job_name, idempotency_key=new.idempotency_key)
                    .first()
                )
                if existing is None:  # the conflicting row was deleted meanwhile
                    raise
                return run_record(existing), False
        if not isinstance(run.run_after, datetime):
            # A database-clock expression (a delay, or the db_default where the INSERT
            # cannot return it, as on MySQL): read back the time the database computed.
            run.run_after, run.wake_at = (
                self._runs().filter(pk=run.pk).values_list("run_after", "wake_at").get()
            )
        # Outside the savepoint: every enqueue of one transaction joins a single NOTIFY.
        self._announce(run)
        return run_record(run), True

    def enqueue_many(self, news: Sequence[NewRun]) -> list[RunRecord]:
        records = own_write(self.alias, lambda: self._insert_runs(news))
        queues = {record.queue_name for record in records if record.status == RunStatus.PENDING}
        announce(self.alias, queues)  # one NOTIFY for the lot, when the caller commits
        return records

    def _insert_runs(self, news: Sequence[NewRun]) -> list[RunRecord]:
        """Insert the runs in as few statements as the database allows (in a transaction)."""
        rows = [new_run_row(new) for new in news]
        self._runs().bulk_create(rows)
        later = {row.pk: row for row in rows if not isinstance(row.run_after, datetime)}
        times = self._runs().filter(pk__in=list(later)).values_list("pk", "run_after", "wake_at")
        for pk, run_after, wake_at in times:  # as in enqueue(): the database's clock
            later[pk].run_after, later[pk].wake_at = run_after, wake_at
        return [run_record(row) for row in rows]

    def delete_runs(self, ids: list[uuid.UUID], *, nested: bool) -> Pruned:
        """Delete finished runs with their journal, logs, events, slots and ticks, in the
        caller's transaction (pruning: ``prune.py`` chose them)."""
        return delete_rows(self.alias, ids, nested=nested)

    def _announce(self, run: Run) -> None:
        if run.status == RunStatus.PENDING:
            # Delivered when the caller's transaction commits, never if it rolls back.
            announce(self.alias, [run.queue_name])

    def get_run(self, run_id: uuid.UUID) -> RunRecord | None:
        def read() -> RunRecord | None:
            run = self._runs().filter(pk=run_id).first()
            return None if run is None else run_record(run)

        return self._read_reconnecting(read)

    def load_journal(self, run_id: uuid.UUID) -> list[StepRecord]:
        def read() -> list[StepRecord]:
            steps = Step.objects.using(self.alias).filter(run_id=run_id).order_by("position")
            return [step_record(step) for step in steps]

        try:
            return self._read_reconnecting(lambda: own_write(self.alias, read, atomic=False))
        except DatabaseError as error:
            raise StorageError(f"run {run_id}: reading its journal failed: {error}") from error

    def _read_reconnecting(self, read: Callable[[], T]) -> T:
        """A read outside any transaction; once more on a new connection if the one it
        used was broken (terminated by the server, a failover, a pooler restart)."""
        try:
            return read()
        except (OperationalError, InterfaceError):
            if connections[self.alias].in_atomic_block:
                raise  # the caller's transaction is gone with it: only the caller can retry
            self.discard_connection()
            return read()

    def discard_connection(self) -> None:
        connections[self.alias].close()

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
        return claim_runs(
            self.alias,
            owner=owner,
            job_names=job_names,
            queues=queues,
            limit=limit,
            timeouts=timeouts,
        )

    def has_claimable_runs(
        self, *, job_names: Collection[str], queues: Sequence[str] | None
    ) -> bool:
        return claimable_exists(self.alias, job_names, queues)

    # -- fenced writes by the lease holder -------------------------------------------------

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        with storage_errors(lease):
            # Heartbeats keep the lease; a checkpoint only fences (and stores progress).
            self._fenced.write(lease, self._progress(checkpoint), checkpoint, check_cancel=True)

    @contextmanager
    def fenced_transaction(self, lease: Lease) -> Iterator[FencedRunTransaction]:
        body_failed = False
        try:
            # Not run again on a lock error: the body is the job's code. On SQLite it
            # waits for the write lock at BEGIN, so the job's writes never wait for it.
            with own_transaction(self.alias):
                self._fenced.fence(lease, {}, check_cancel=True)
                try:
                    yield FencedRunTransaction(self.alias, self._fenced, lease)
                except BaseException:
                    body_failed = True  # the step's own error, not ours
                    raise
        except DatabaseError as error:
            if body_failed:
                raise
            raise storage_error(lease, error, "its fenced transaction failed") from error

    def atomic_step(
        self, lease: Lease, *, renew: Collection[uuid.UUID] = ()
    ) -> AbstractContextManager[ORMAtomicStep]:
        # Other leases need renewing only where no heartbeat can run meanwhile.
        return atomic_step_transaction(
            self.alias,
            self._fenced,
            lease,
            renew=renew if self.transactions_hold_database else (),
            limits=self.session_limits(),
        )

    def complete(self, lease: Lease, output: Any, checkpoint: Checkpoint) -> None:
        changes = {
            "status": RunStatus.COMPLETED,
            "output": output,
            "finished_at": timezone.now(),
            **CLEAR_LEASE,
            **self._progress(checkpoint),
        }
        with storage_errors(lease):
            self._end(lease, changes, checkpoint, completed=True)

    def together(self, operation: Callable[[], T], *, completing: Sequence[Lease] = ()) -> T:
        def locked_first() -> T:
            lock_parents(self.alias, [lease.parent_id for lease in completing])
            return operation()

        return own_write(self.alias, locked_first)

    def fail(
        self,
        lease: Lease,
        *,
        errors: list[dict[str, Any]],
        checkpoint: Checkpoint,
        retry_delay: float | None,
    ) -> None:
        changes: dict[str, Any] = {
            "errors": errors,
            "waiting_for": None,
            **CLEAR_LEASE,
            **self._progress(checkpoint),
        }
        if retry_delay is None:
            changes |= {"status": RunStatus.FAILED, "finished_at": timezone.now()}
        elif retry_delay <= 0:
            changes |= {"status": RunStatus.PENDING, "attempt": F("attempt") + 1}
        else:
            changes |= {
                "status": RunStatus.WAITING,
                "wake_at": DbNow(retry_delay),
                "attempt": F("attempt") + 1,
            }
        with storage_errors(lease):
            if retry_delay is None:
                self._end(lease, changes, checkpoint, completed=False)
                return
            # Another attempt: the run keeps its key's slot and its children.
            self._fenced.write(lease, changes, checkpoint)
            if retry_delay <= 0:
                announce(self.alias, [lease.queue_name])

    def release(self, lease: Lease, checkpoint: Checkpoint) -> None:
        changes = {"status": RunStatus.PENDING, **CLEAR_LEASE, **self._progress(checkpoint)}
        with storage_errors(lease):
            self._fenced.write(lease, changes, checkpoint)
            announce(self.alias, [lease.queue_name])

    def _end(
        self, lease: Lease, changes: dict[str, Any], checkpoint: Checkpoint, *, completed: bool
    ) -> None:
        """The run's last fenced write and what its end implies, in one transaction."""
        if completed and lease.concurrency_key is None and lease.parent_id is None:
            # Nothing else to do: on PostgreSQL, one statement.
            self._fenced.write(lease, changes, checkpoint)
            return
        ending = Ending(
            lease.run_id,
            lease.queue_name,
            lease.parent_id,
            takes_children=not completed,
            keyed=lease.concurrency_key is not None,
        )

        def end() -> None:
            lock_parents(self.alias, [lease.parent_id])
            self._fenced.write(lease, changes, checkpoint)
            ended(self.alias, [ending])

        own_write(self.alias, end)

    def suspend(
        self,
        lease: Lease,
        checkpoint: Checkpoint,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None = None,
    ) -> None:
        with storage_errors(lease):
            self._fenced.write(
                lease,
                suspend_changes(checkpoint, wake_at, waiting_for),
                checkpoint,
                check_cancel=True,
            )

    def now(self) -> datetime:
        try:
            return own_write(self.alias, lambda: database_now(self.alias), atomic=False)
        except DatabaseError as error:
            raise StorageError(f"reading the database clock failed: {error}") from error

    # The functions in waits.py open their own transaction (own_transaction).
    @own_write_method(atomic=False)
    def send_event(self, run_id: uuid.UUID, name: str, payload: Any) -> None:
        send_event(self.alias, run_id, name, payload)

    # -- housekeeping any worker does ------------------------------------------------------

    @own_write_method(atomic=False)  # an UPDATE and a SELECT, both safe to run again
    def heartbeat(self, owner: str, run_ids: Collection[uuid.UUID]) -> Heartbeat:
        return leases.renew(self.alias, owner, run_ids)

    def finish_cancelled(self, lease: Lease, checkpoint: Checkpoint) -> None:
        changes = {
            "status": RunStatus.CANCELLED,
            "finished_at": timezone.now(),
            "waiting_for": None,
            **CLEAR_LEASE,
            **self._progress(checkpoint),
        }
        with storage_errors(lease):
            self._end(lease, changes, checkpoint, completed=False)

    @own_write_method(atomic=False)
    def cancel(self, run_id: uuid.UUID) -> None:
        cancel(self.alias, run_id)

    @own_write_method(atomic=False)
    def retry(self, run_id: uuid.UUID) -> None:
        retry(self.alias, run_id)

    @own_write_method(atomic=False)
    def restart(self, run_id: uuid.UUID) -> None:
        restart(self.alias, run_id)

    @own_write_method(atomic=False)
    def fork(self, /, run_id: uuid.UUID, **options: Any) -> RunRecord:
        return run_record(fork_rows(self.alias, run_id, **options))  # see Storage.fork

    @own_write_method()
    def recover_stale(self, *, max_recoveries: int, limit: int) -> StaleSweep:
        return sweeps.recover_stale(self.alias, max_recoveries=max_recoveries, limit=limit)

    @own_write_method()
    def fail_overdue(self, *, limit: int) -> list[uuid.UUID]:
        return sweeps.fail_overdue(self.alias, limit=limit)

    @own_write_method(atomic=False)  # a SELECT and a conditional UPDATE
    def promote_due(self, *, limit: int) -> int:
        return sweeps.promote_due(self.alias, limit=limit)

    def unclaimable_job_names(self, known: Collection[str]) -> dict[str, int]:
        return unclaimable_job_names(self.alias, known)

    @own_write_method(atomic=False)
    def worker_seen(self, info: WorkerInfo) -> None:
        worker_seen(self.alias, info)

    @own_write_method(atomic=False)
    def worker_stopped(self, worker_id: str) -> None:
        worker_stopped(self.alias, worker_id)
