"""Writes by a run's lease holder: a fencing UPDATE of the run, then the checkpoint's rows.

Every write is conditional on the lease token, so a worker that lost its lease changes
nothing. Here the fence and the inserts share one short transaction; PostgreSQL makes
them one statement (``postgresql/fenced.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..exceptions import LeaseLost, RunCancelled
from ..models import Run, RunLog, Step
from . import leases
from .base import Checkpoint, Lease
from .own_writes import own_write, storage_error
from .sql import insert_rows, set_clause

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


def step_rows(lease: Lease, checkpoint: Checkpoint) -> list[dict[str, Any]]:
    return [
        {name: lease.run_id if name == "run" else getattr(step, name) for name in STEP_COLUMNS}
        for step in checkpoint.steps
        if step.position not in checkpoint.replacing
    ]


def log_rows(lease: Lease, checkpoint: Checkpoint) -> list[dict[str, Any]]:
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
    # How the fence locks the run row when it changes nothing: None takes FOR UPDATE
    # where the database has row locks (SQLite's BEGIN IMMEDIATE already holds the
    # write lock).
    row_lock: str | None = None

    def __init__(self, alias: str) -> None:
        self.alias = alias

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
        where = leases.fence_sql(connection, check_cancel=check_cancel)
        where_params = leases.fence_params(lease, connection)
        table = connection.ops.quote_name(Run._meta.db_table)
        if not changes:
            lock = self.row_lock
            if lock is None:
                lock = "FOR UPDATE" if connection.features.has_select_for_update else ""
            expression, select_params = select
            return (
                f"SELECT {expression} FROM {table} WHERE {where} {lock}",
                [*select_params, *where_params],
            )
        assignments, set_params = set_clause(Run, changes, connection)
        return f"UPDATE {table} SET {assignments} WHERE {where}", [*set_params, *where_params]

    def time_limits(self, timeout: float) -> tuple[str, list[Any]]:
        """What a fence selects to have the database end its transaction after
        ``timeout`` seconds, where the fence statement itself can say so."""
        return "1", []

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
            held = Run.objects.using(self.alias).filter(leases.fence(lease))
            if held.filter(cancel_requested=True).exists():
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
                (Step, STEP_COLUMNS, step_rows(lease, checkpoint)),
                (RunLog, LOG_COLUMNS, log_rows(lease, checkpoint)),
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

        def write_in_transaction() -> None:
            self.fence(lease, changes, check_cancel=check_cancel)
            self.insert(lease, checkpoint)

        own_write(self.alias, write_in_transaction)

    def write_in_transaction(
        self, lease: Lease, changes: Mapping[str, Any], checkpoint: Checkpoint
    ) -> None:
        """``write`` inside a transaction already open (no savepoint)."""
        self.fence(lease, changes)
        self.insert(lease, checkpoint)


@contextmanager
def storage_errors(lease: Lease) -> Iterator[None]:
    """Our own writes failing is not the job's fault: report it as StorageError."""
    try:
        yield
    except DatabaseError as error:
        raise storage_error(lease, error, "writing to the database failed") from error
