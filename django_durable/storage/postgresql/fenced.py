"""PostgreSQL's fenced writes: the fence and the checkpoint's rows as one statement.

One prepared statement is a single round trip with no separate BEGIN/COMMIT: a plain
INSERT ... SELECT for a step's journal entry (``journal.py``), data-modifying CTEs that
insert only if the fencing UPDATE matched for a run's last write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ...models import RunLog, Step
from ..base import Checkpoint, Lease
from ..fenced import LOG_COLUMNS, STEP_COLUMNS, FencedWriter, log_rows, step_rows
from ..sql import insert_rows
from . import prepared
from .journal import insert_if_leased

_LIMITS = (
    "set_config('idle_in_transaction_session_timeout', %s, true), "
    "set_config('statement_timeout', %s, true)"
)


class PostgresFencedWriter(FencedWriter):
    # A share lock is enough: a takeover must UPDATE the row, so it waits for it.
    row_lock = "FOR SHARE"

    def time_limits(self, timeout: float) -> tuple[str, list[Any]]:
        # Transaction-local, set by the fence itself: no extra round trip.
        milliseconds = str(max(1, math.ceil(timeout * 1000)))
        return _LIMITS, [milliseconds, milliseconds]

    def write(
        self,
        lease: Lease,
        changes: Mapping[str, Any],
        checkpoint: Checkpoint,
        *,
        check_cancel: bool = False,
    ) -> None:
        if checkpoint.replacing:  # rewritten journal entries need UPDATEs first
            super().write(lease, changes, checkpoint, check_cancel=check_cancel)
            return
        self._write_one_statement(connections[self.alias], lease, changes, checkpoint, check_cancel)

    def write_in_transaction(
        self, lease: Lease, changes: Mapping[str, Any], checkpoint: Checkpoint
    ) -> None:
        # Still one statement, so the UPDATE of the run costs no extra round trip.
        if checkpoint.replacing:
            super().write_in_transaction(lease, changes, checkpoint)
            return
        self._write_one_statement(connections[self.alias], lease, changes, checkpoint, False)

    def _write_one_statement(
        self,
        connection: BaseDatabaseWrapper,
        lease: Lease,
        changes: Mapping[str, Any],
        checkpoint: Checkpoint,
        check_cancel: bool,
    ) -> None:
        steps, logs = step_rows(lease, checkpoint), log_rows(lease, checkpoint)
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
