"""Writes by a run's lease holder: a fencing UPDATE of the run, then the checkpoint's rows.

Every write is conditional on the lease token, so a worker that lost its lease changes
nothing. On PostgreSQL the fence and the inserts are one prepared statement, a single
round trip with no separate BEGIN/COMMIT: a plain INSERT ... SELECT for a step's journal
entry (``journal_pg.py``), data-modifying CTEs that insert only if the fencing UPDATE
matched for a run's last write. Elsewhere they share one short transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..exceptions import LeaseLost, RunCancelled
from ..models import Run, RunLog, Step
from ..status import RunStatus
from . import prepared
from .base import Checkpoint, Lease
from .journal_pg import insert_if_leased
from .own_writes import own_write, storage_error
from .sql import fence_where, insert_rows, set_clause

STEP_COLUMNS = (
    "run",
    "position",
    "kind",
    "name",
    "status",
    "result",
    "error",
    "attempts",
    "run_attempt",
    "started_at",
    "finished_at",
)
LOG_COLUMNS = ("run", "attempt", "level", "message", "created_at")


def _step_rows(lease: Lease, checkpoint: Checkpoint) -> list[dict[str, Any]]:
    return [
        {name: lease.run_id if name == "run" else getattr(step, name) for name in STEP_COLUMNS}
        for step in checkpoint.steps
        if step.position not in checkpoint.replacing
    ]


def _log_rows(lease: Lease, checkpoint: Checkpoint) -> list[dict[str, Any]]:
    return [
        {
            "run": lease.run_id,
            "attempt": log.attempt,
            "level": log.level,
            "message": log.message,
            "created_at": log.created_at,
        }
        for log in checkpoint.logs
    ]


class FencedWriter:
    def __init__(self, alias: str) -> None:
        self.alias = alias

    def _fence_where(
        self, connection: BaseDatabaseWrapper, lease: Lease, check_cancel: bool
    ) -> tuple[str, list[Any]]:
        conditions: dict[str, Any] = {
            "id": lease.run_id,
            "lease_token": lease.token,
            "status": RunStatus.RUNNING,
        }
        if check_cancel:
            conditions["cancel_requested"] = False
        return fence_where(Run, conditions, connection)

    def _fence_sql(
        self,
        connection: BaseDatabaseWrapper,
        lease: Lease,
        changes: Mapping[str, Any],
        check_cancel: bool,
        select: tuple[str, list[Any]] = ("1", []),
    ) -> tuple[str, list[Any]]:
        """The fence: an UPDATE with ``changes``, or with none a row lock (selecting
        ``select``, an SQL expression and its parameters).

        Locking the run row is enough to order a checkpoint against a takeover (which
        must UPDATE the row, so it waits, or has committed and changed the token), and
        unlike an UPDATE it writes no new row version or index entries.
        """
        where, where_params = self._fence_where(connection, lease, check_cancel)
        table = connection.ops.quote_name(Run._meta.db_table)
        if not changes:
            # SQLite needs no lock clause: BEGIN IMMEDIATE already holds the write lock.
            lock = {"postgresql": "FOR SHARE", "sqlite": ""}.get(connection.vendor, "FOR UPDATE")
            expression, select_params = select
            return (
                f"SELECT {expression} FROM {table} WHERE {where} {lock}",
                [*select_params, *where_params],
            )
        assignments, set_params = set_clause(Run, changes, connection)
        return f"UPDATE {table} SET {assignments} WHERE {where}", [*set_params, *where_params]

    def fence(
        self,
        lease: Lease,
        changes: Mapping[str, Any],
        *,
        check_cancel: bool = False,
        select: tuple[str, list[Any]] = ("1", []),
    ) -> None:
        """Change the run only while ``lease`` still owns it; ``LeaseLost`` otherwise."""
        connection = connections[self.alias]
        sql, params = self._fence_sql(connection, lease, changes, check_cancel, select)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fenced = cursor.rowcount if changes else len(cursor.fetchall())
        if fenced != 1:
            self._fence_failed(lease, check_cancel)

    def _fence_failed(self, lease: Lease, check_cancel: bool) -> None:
        """Raise why the fence matched nothing: a cancel request, or a lost lease."""
        if check_cancel:
            cancelled = Run.objects.using(self.alias).filter(
                pk=lease.run_id,
                lease_token=lease.token,
                status=RunStatus.RUNNING,
                cancel_requested=True,
            )
            if cancelled.exists():
                raise RunCancelled
        raise LeaseLost(f"run {lease.run_id} is no longer leased by {lease.owner}")

    def insert(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """Insert the checkpoint's journal entries and logs (the run is already fenced)."""
        connection = connections[self.alias]
        for record in checkpoint.steps:
            if record.position in checkpoint.replacing:
                Step.objects.using(self.alias).filter(
                    run_id=lease.run_id, position=record.position
                ).update(**{name: getattr(record, name) for name in STEP_COLUMNS[1:]})
        with connection.cursor() as cursor:
            for model, columns, rows in (
                (Step, STEP_COLUMNS, _step_rows(lease, checkpoint)),
                (RunLog, LOG_COLUMNS, _log_rows(lease, checkpoint)),
            ):
                if rows:
                    names, templates, params = insert_rows(model, columns, rows, connection)
                    table = connection.ops.quote_name(model._meta.db_table)
                    cursor.execute(
                        f"INSERT INTO {table} ({names}) VALUES {', '.join(templates)}", params
                    )

    def write(
        self,
        lease: Lease,
        changes: Mapping[str, Any],
        checkpoint: Checkpoint,
        *,
        check_cancel: bool = False,
    ) -> None:
        """The fenced UPDATE with ``changes`` and the checkpoint's rows, atomically."""
        connection = connections[self.alias]
        if connection.vendor == "postgresql" and not checkpoint.replacing:
            self._write_one_statement(connection, lease, changes, checkpoint, check_cancel)
            return

        def write_in_transaction() -> None:
            self.fence(lease, changes, check_cancel=check_cancel)
            self.insert(lease, checkpoint)

        own_write(self.alias, write_in_transaction)

    def write_in_transaction(
        self, lease: Lease, changes: Mapping[str, Any], checkpoint: Checkpoint
    ) -> None:
        """``write`` inside a transaction already open (no savepoint): on PostgreSQL still
        one statement, so the UPDATE of the run costs no extra round trip."""
        connection = connections[self.alias]
        if connection.vendor == "postgresql" and not checkpoint.replacing:
            self._write_one_statement(connection, lease, changes, checkpoint, False)
            return
        self.fence(lease, changes)
        self.insert(lease, checkpoint)

    def _write_one_statement(
        self,
        connection: BaseDatabaseWrapper,
        lease: Lease,
        changes: Mapping[str, Any],
        checkpoint: Checkpoint,
        check_cancel: bool,
    ) -> None:
        steps, logs = _step_rows(lease, checkpoint), _log_rows(lease, checkpoint)
        if not changes and bool(steps) != bool(logs):
            # The hot path: one step's journal entry (or a batch of logs).
            model, columns, rows = (
                (Step, STEP_COLUMNS, steps) if steps else (RunLog, LOG_COLUMNS, logs)
            )
            fenced = insert_if_leased(self.alias, lease, model, columns, rows, check_cancel)
        elif steps or logs:
            # Data-modifying CTEs: every insert selects FROM fence, so no fence row means
            # nothing is inserted; the last insert's row count tells which happened.
            fence_sql, params = self._fence_sql(connection, lease, changes, check_cancel)
            ctes = [f"fence AS ({fence_sql}{' RETURNING 1' if changes else ''})"]
            inserts = []
            for model, columns, rows in ((Step, STEP_COLUMNS, steps), (RunLog, LOG_COLUMNS, logs)):
                if rows:
                    names, templates, row_params = insert_rows(
                        model, columns, rows, connection, cast=True
                    )
                    table = connection.ops.quote_name(model._meta.db_table)
                    inserts.append(
                        f"INSERT INTO {table} ({names}) SELECT v.* "
                        f"FROM fence CROSS JOIN (VALUES {', '.join(templates)}) AS v"
                    )
                    params.extend(row_params)
            ctes += [f"rows{i} AS ({insert})" for i, insert in enumerate(inserts[:-1])]
            sql = f"WITH {', '.join(ctes)} {inserts[-1]}"
            fenced = prepared.execute(self.alias, sql, params).rowcount > 0
        else:
            sql, params = self._fence_sql(connection, lease, changes, check_cancel)
            cursor = prepared.execute(self.alias, sql, params)
            fenced = (cursor.rowcount if changes else len(cursor.fetchall())) == 1
        if not fenced:
            self._fence_failed(lease, check_cancel)


@contextmanager
def storage_errors(lease: Lease) -> Iterator[None]:
    """Our own writes failing is not the job's fault: report it as StorageError."""
    try:
        yield
    except DatabaseError as error:
        raise storage_error(lease, error, "writing to the database failed") from error
