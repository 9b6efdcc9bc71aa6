"""The claim on PostgreSQL: one prepared statement, one round trip, no explicit transaction.

It does what the ORM claim in ``claim.py`` does, in one statement: lock the next runnable
rows (SKIP LOCKED, in the order of the claim indexes), take the concurrency key slot of
each keyed run, lease the runs that hold theirs, and give runs of jobs with a timeout
their deadline at their first claim, all by the database clock. Being one statement, it
commits on its own and holds its row locks only while it executes.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections
from django.db.models import Field

from ...claim_order import claim_order_sql, claim_sort_key
from ...conf import durable_settings
from ...models import ConcurrencySlot, Run
from ...status import RunStatus
from .. import leases
from ..base import ClaimedRun, Lease, RunRecord
from .prepared import execute

# RunRecord's fields, in order, as run table columns (parent_id is the FK's column).
_RECORD_FIELDS: list[Field[Any, Any]] = [
    Run._meta.get_field("parent" if name == "parent_id" else name)  # type: ignore[misc]
    for name in RunRecord.__slots__
]


@cache
def _claim_sql(alias: str, queue_filter: str) -> str:
    quote = connections[alias].ops.quote_name
    run = quote(Run._meta.db_table)
    slot = quote(ConcurrencySlot._meta.db_table)
    returning = ", ".join(f"r.{quote(str(field.column))}" for field in _RECORD_FIELDS)
    order = claim_order_sql(quote)
    # The lease expiry every other write uses, with its one parameter named.
    expiry = leases.expiry_sql(connections[alias])[0].replace("%s", "%(stale_after)s")
    # Status values are literals, not parameters, so the generic plan of the prepared
    # statement still matches the partial indexes (WHERE status = 'pending').
    return f"""
WITH candidates AS (
    SELECT id, concurrency_key, priority, run_after, started_at,
        -- A retried or released run kept its key's slot: it may start again.
        concurrency_key IS NOT NULL
            AND EXISTS (SELECT 1 FROM {slot} s WHERE s.run_id = {run}.id) AS holds_slot
    FROM {run}
    WHERE status = '{RunStatus.PENDING.value}'
      AND job_name = ANY(%(jobs)s::varchar[]){queue_filter}
      AND NOT EXISTS (
          SELECT 1 FROM {slot} s
          WHERE s.key = {run}.concurrency_key AND s.run_id <> {run}.id
      )
    ORDER BY {order}
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), taken AS (
    -- A conflict means another run, claimed elsewhere or earlier in this batch, holds
    -- the key: that run keeps it.
    INSERT INTO {slot} (key, slot, run_id, acquired_at)
    SELECT concurrency_key, 0, id, %(now)s FROM candidates
    WHERE concurrency_key IS NOT NULL AND NOT holds_slot
    ORDER BY {order}
    ON CONFLICT DO NOTHING
    RETURNING run_id
)
UPDATE {run} AS r SET
    status = '{RunStatus.RUNNING.value}',
    lease_owner = %(owner)s,
    lease_token = %(token)s,
    lease_expires_at = {expiry},
    started_at = COALESCE(r.started_at, %(now)s),
    deadline = CASE
        WHEN r.deadline IS NULL AND r.job_name = ANY(%(timeout_jobs)s::varchar[])
        THEN STATEMENT_TIMESTAMP() + make_interval(secs => (%(timeouts)s::float8[])[
            array_position(%(timeout_jobs)s::varchar[], r.job_name)])
        ELSE r.deadline
    END
FROM candidates c
WHERE r.id = c.id AND (
    c.concurrency_key IS NULL OR c.holds_slot OR c.id IN (SELECT run_id FROM taken)
)
RETURNING {returning}, c.started_at IS NULL, STATEMENT_TIMESTAMP()
"""


def _queue_filter(queues: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    # One text per shape: a single queue compares with "=", so the plan can read the
    # claim index in order instead of sorting.
    if queues is None:
        return "", {}
    if len(queues) == 1:
        return "\n      AND queue_name = %(queue)s", {"queue": queues[0]}
    return "\n      AND queue_name = ANY(%(queues)s::varchar[])", {"queues": list(queues)}


def claim_postgresql(
    alias: str,
    *,
    owner: str,
    token: uuid.UUID,
    now: datetime,
    job_names: Collection[str],
    queues: Sequence[str] | None,
    limit: int,
    timeouts: Mapping[str, float],
) -> list[ClaimedRun]:
    queue_filter, params = _queue_filter(queues)
    params |= {
        "jobs": list(job_names),
        "limit": limit,
        "now": now,
        "owner": owner,
        "token": token,
        "stale_after": durable_settings.STALE_AFTER,
        "timeout_jobs": list(timeouts),
        "timeouts": [float(seconds) for seconds in timeouts.values()],
    }
    cursor = execute(alias, _claim_sql(alias, queue_filter), params)
    connection = connections[alias]
    claimed = []
    for *values, fresh, db_now in cursor.fetchall():
        run = RunRecord(**_record_values(values, connection))
        claimed.append(
            ClaimedRun(
                run=run,
                lease=Lease.taken(run, token=token, owner=owner),
                fresh=fresh and run.forked_from is None,  # a fork starts with a journal
                time_left=None if run.deadline is None else (run.deadline - db_now).total_seconds(),
            )
        )
    # RETURNING gives rows in no particular order.
    claimed.sort(key=lambda item: claim_sort_key(item.run))
    return claimed


def _record_values(values: list[Any], connection: Any) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, field, value in zip(RunRecord.__slots__, _RECORD_FIELDS, values, strict=True):
        if hasattr(field, "from_db_value"):  # JSON arrives as text through Django's loaders
            value = field.from_db_value(value, None, connection)
        record[name] = value
    record["status"] = RunStatus(record["status"])
    return record
