"""The storage protocol on the Django ORM, for PostgreSQL, MySQL/MariaDB and SQLite."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import Count, F, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..conf import durable_settings
from ..exceptions import LeaseLost
from ..models import Run, RunLog, Step
from ..status import RunStatus, StepKind, StepStatus
from .base import (
    Checkpoint,
    ClaimedRun,
    Lease,
    NewRun,
    RunRecord,
    StaleSweep,
    StepRecord,
)
from .dbclock import DbNow

RUN_FIELDS = (*(f for f in RunRecord.__slots__ if f != "parent_id"), "parent")
STEP_FIELDS = StepRecord.__slots__


def _run_record(run: Run) -> RunRecord:
    values = {name: getattr(run, name) for name in RunRecord.__slots__}
    values["status"] = RunStatus(run.status)
    return RunRecord(**values)


def _step_record(step: Step) -> StepRecord:
    return StepRecord(
        position=step.position,
        kind=StepKind(step.kind),
        name=step.name,
        status=StepStatus(step.status),
        result=step.result,
        error=step.error,
        attempts=step.attempts,
        run_attempt=step.run_attempt,
        started_at=step.started_at,
        finished_at=step.finished_at,
    )


_CLEAR_LEASE = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


class ORMStorage:
    """Storage on one database alias (``DURABLE["DATABASE"]``)."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    # -- helpers -----------------------------------------------------------------------

    @property
    def _vendor(self) -> str:
        return connections[self.alias].vendor

    def _runs(self) -> QuerySet[Run]:
        return Run.objects.using(self.alias)

    def _lease_expiry(self) -> DbNow:
        return DbNow(durable_settings.STALE_AFTER)

    def _fence(self, lease: Lease, **changes: Any) -> None:
        """The fencing update: change the run only while ``lease`` still owns it."""
        updated = (
            self._runs()
            .filter(pk=lease.run_id, lease_token=lease.token, status=RunStatus.RUNNING)
            .update(**changes)
        )
        if not updated:
            raise LeaseLost(f"run {lease.run_id} is no longer leased by {lease.owner}")

    def _write(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """Insert the buffered journal entries and logs (the run row is already fenced)."""
        new_steps = []
        for record in checkpoint.steps:
            values = {name: getattr(record, name) for name in STEP_FIELDS}
            if record.position in checkpoint.replacing:
                Step.objects.using(self.alias).filter(
                    run_id=lease.run_id, position=record.position
                ).update(**values)
            else:
                new_steps.append(Step(run_id=lease.run_id, **values))
        if new_steps:
            Step.objects.using(self.alias).bulk_create(new_steps)
        if checkpoint.logs:
            RunLog.objects.using(self.alias).bulk_create(
                RunLog(
                    run_id=lease.run_id,
                    attempt=log.attempt,
                    level=log.level,
                    message=log.message,
                    created_at=log.created_at,
                )
                for log in checkpoint.logs
            )

    @staticmethod
    def _progress(checkpoint: Checkpoint) -> dict[str, Any]:
        return {} if checkpoint.progress is None else {"progress": checkpoint.progress}

    # -- enqueue and lookups -------------------------------------------------------------

    def enqueue(self, new: NewRun) -> tuple[RunRecord, bool]:
        run = Run(
            job_name=new.job_name,
            queue_name=new.queue_name,
            priority=new.priority,
            args=new.args,
            kwargs=new.kwargs,
            idempotency_key=new.idempotency_key,
            concurrency_key=new.concurrency_key,
            parent_id=new.parent_id,
        )
        if new.run_after is not None:
            # Future or not, the database clock decides when it becomes runnable.
            run.status, run.run_after, run.wake_at = RunStatus.WAITING, new.run_after, new.run_after
        if new.idempotency_key is None:
            run.save(using=self.alias, force_insert=True)
            return _run_record(run), True
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
            return _run_record(existing), False
        return _run_record(run), True

    def get_run(self, run_id: uuid.UUID) -> RunRecord | None:
        run = self._runs().filter(pk=run_id).first()
        return None if run is None else _run_record(run)

    def load_journal(self, run_id: uuid.UUID) -> list[StepRecord]:
        steps = Step.objects.using(self.alias).filter(run_id=run_id).order_by("position")
        return [_step_record(step) for step in steps]

    # -- claiming ------------------------------------------------------------------------

    def claim(
        self,
        *,
        owner: str,
        job_names: Collection[str],
        queues: Sequence[str] | None,
        limit: int,
    ) -> list[ClaimedRun]:
        if not job_names or limit < 1:
            return []
        token = uuid.uuid4()
        now = timezone.now()
        with transaction.atomic(using=self.alias):
            if self._vendor == "sqlite":
                runs = self._claim_sqlite(owner, token, now, job_names, queues, limit)
            else:
                runs = self._claim_locking(owner, token, now, job_names, queues, limit)
        claimed = []
        for run, fresh in runs:
            run.status = RunStatus.RUNNING
            run.started_at = run.started_at or now
            lease = Lease(run_id=run.pk, token=token, owner=owner)
            claimed.append(ClaimedRun(run=_run_record(run), lease=lease, fresh=fresh))
        return claimed

    def _claim_locking(
        self,
        owner: str,
        token: uuid.UUID,
        now: Any,
        job_names: Collection[str],
        queues: Sequence[str] | None,
        limit: int,
    ) -> list[tuple[Run, bool]]:
        # PostgreSQL and MySQL/MariaDB: lock the next runnable rows, skipping rows other
        # workers hold, then stamp the lease by primary key in the same short transaction.
        # The filter and ORDER BY match the durable_run_claim index column for column.
        candidates = self._runs().filter(status=RunStatus.PENDING, job_name__in=job_names)
        if queues is not None:
            candidates = candidates.filter(queue_name__in=queues)
        runs = list(
            candidates.select_for_update(skip_locked=True)
            .order_by("-priority", "run_after", "id")
            .only(*RUN_FIELDS)[:limit]
        )
        if runs:
            self._runs().filter(pk__in=[run.pk for run in runs]).update(
                status=RunStatus.RUNNING,
                lease_owner=owner,
                lease_token=token,
                lease_expires_at=self._lease_expiry(),
                started_at=Coalesce(F("started_at"), now),
            )
        return [(run, run.started_at is None) for run in runs]

    def _claim_sqlite(
        self,
        owner: str,
        token: uuid.UUID,
        now: Any,
        job_names: Collection[str],
        queues: Sequence[str] | None,
        limit: int,
    ) -> list[tuple[Run, bool]]:
        # SQLite has one writer at a time and no SKIP LOCKED: one conditional
        # UPDATE ... RETURNING picks and leases the rows in a single statement.
        connection = connections[self.alias]
        ops = connection.ops
        table = ops.quote_name(Run._meta.db_table)
        column_of = {field.name: str(field.column) for field in Run._meta.concrete_fields}
        columns = ", ".join(ops.quote_name(column_of[name]) for name in RUN_FIELDS)
        job_marks = ", ".join(["%s"] * len(job_names))
        where = f"status = %s AND job_name IN ({job_marks})"
        params: list[Any] = [RunStatus.PENDING, *job_names]
        if queues is not None:
            where += f" AND queue_name IN ({', '.join(['%s'] * len(queues))})"
            params += list(queues)
        sql = (
            f"UPDATE {table} SET status = %s, lease_owner = %s, lease_token = %s, "
            "lease_expires_at = STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW', %s), "
            "started_at = COALESCE(started_at, %s) "
            f"WHERE id IN (SELECT id FROM {table} WHERE {where} "
            "ORDER BY priority DESC, run_after, id LIMIT %s) "
            f"RETURNING {columns}"
        )
        head = [
            RunStatus.RUNNING,
            owner,
            token.hex,
            f"{float(durable_settings.STALE_AFTER):+.6f} seconds",
            ops.adapt_datetimefield_value(now),
        ]
        runs = list(self._runs().raw(sql, [*head, *params, limit]))
        # RETURNING gives rows in no particular order, and values after the update: a run
        # whose started_at is this claim's own timestamp had never started before.
        runs.sort(key=lambda run: (-run.priority, run.run_after, run.pk))
        return [(run, run.started_at == now) for run in runs]

    # -- fenced writes by the lease holder -------------------------------------------------

    def checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        with transaction.atomic(using=self.alias):
            self._fence(lease, lease_expires_at=self._lease_expiry(), **self._progress(checkpoint))
            self._write(lease, checkpoint)

    @contextmanager
    def fenced_transaction(self, lease: Lease) -> Iterator[_FencedTransaction]:
        with transaction.atomic(using=self.alias):
            self._fence(lease, lease_expires_at=self._lease_expiry())
            yield _FencedTransaction(self, lease)

    def complete(self, lease: Lease, output: Any, checkpoint: Checkpoint) -> None:
        with transaction.atomic(using=self.alias):
            self._fence(
                lease,
                status=RunStatus.COMPLETED,
                output=output,
                finished_at=timezone.now(),
                **_CLEAR_LEASE,
                **self._progress(checkpoint),
            )
            self._write(lease, checkpoint)

    def fail(
        self,
        lease: Lease,
        *,
        errors: list[dict[str, Any]],
        checkpoint: Checkpoint,
        retry_delay: float | None,
    ) -> None:
        if retry_delay is None:
            changes: dict[str, Any] = {"status": RunStatus.FAILED, "finished_at": timezone.now()}
        elif retry_delay <= 0:
            changes = {"status": RunStatus.PENDING, "attempt": F("attempt") + 1}
        else:
            changes = {
                "status": RunStatus.WAITING,
                "wake_at": DbNow(retry_delay),
                "attempt": F("attempt") + 1,
            }
        with transaction.atomic(using=self.alias):
            self._fence(
                lease, errors=errors, **changes, **_CLEAR_LEASE, **self._progress(checkpoint)
            )
            self._write(lease, checkpoint)

    def release(self, lease: Lease, checkpoint: Checkpoint) -> None:
        with transaction.atomic(using=self.alias):
            self._fence(
                lease, status=RunStatus.PENDING, **_CLEAR_LEASE, **self._progress(checkpoint)
            )
            self._write(lease, checkpoint)

    # -- housekeeping any worker does ------------------------------------------------------

    def heartbeat(self, owner: str, run_ids: Collection[uuid.UUID]) -> int:
        if not run_ids:
            return 0
        return (
            self._runs()
            .filter(pk__in=list(run_ids), status=RunStatus.RUNNING, lease_owner=owner)
            .update(lease_expires_at=self._lease_expiry())
        )

    def recover_stale(self, *, max_recoveries: int, limit: int) -> StaleSweep:
        expired = dict(status=RunStatus.RUNNING, lease_expires_at__lt=DbNow())
        with transaction.atomic(using=self.alias):
            stale = self._runs().filter(**expired).order_by("lease_expires_at")
            if self._vendor != "sqlite":
                stale = stale.select_for_update(skip_locked=True)
            rows = list(stale.values_list("pk", "recoveries", "errors", "attempt")[:limit])
            requeue = [pk for pk, recoveries, _, _ in rows if recoveries < max_recoveries]
            if requeue:
                self._runs().filter(pk__in=requeue, **expired).update(
                    status=RunStatus.PENDING, recoveries=F("recoveries") + 1, **_CLEAR_LEASE
                )
            failed = []
            for pk, recoveries, errors, attempt in rows:
                if recoveries < max_recoveries:
                    continue
                lost = {
                    "attempt": attempt,
                    "type": "django_durable.WorkerLost",
                    "message": f"the run's worker stopped heartbeating {recoveries + 1} times "
                    f"(DURABLE['MAX_RECOVERIES'] is {max_recoveries})",
                    "traceback": "",
                }
                if (
                    self._runs()
                    .filter(pk=pk, **expired)
                    .update(
                        status=RunStatus.FAILED,
                        errors=[*errors, lost],
                        finished_at=timezone.now(),
                        **_CLEAR_LEASE,
                    )
                ):
                    failed.append(pk)
        return StaleSweep(requeued=requeue, failed=failed)

    def promote_due(self, *, limit: int) -> int:
        due = dict(status=RunStatus.WAITING, wake_at__lte=DbNow())
        ids = list(
            self._runs().filter(**due).order_by("wake_at").values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return 0
        return self._runs().filter(pk__in=ids, **due).update(status=RunStatus.PENDING, wake_at=None)

    def unclaimable_job_names(self, known: Collection[str]) -> dict[str, int]:
        rows = (
            self._runs()
            .filter(status=RunStatus.PENDING)
            .exclude(job_name__in=list(known))
            .values("job_name")
            .annotate(count=Count("pk"))
            .order_by("job_name")
        )
        return {row["job_name"]: row["count"] for row in rows}


class _FencedTransaction:
    def __init__(self, storage: ORMStorage, lease: Lease) -> None:
        self._storage = storage
        self._lease = lease

    def write(self, checkpoint: Checkpoint) -> None:
        if checkpoint.progress is not None:
            self._storage._runs().filter(pk=self._lease.run_id).update(progress=checkpoint.progress)
        self._storage._write(self._lease, checkpoint)
