"""PostgreSQL: a batch of pruned runs and everything that belongs to them in one statement.

Data-modifying CTEs delete from every table at once, the ids sent as one array; only
Run.parent has a foreign key constraint, checked at COMMIT (Django makes it deferrable),
when no child points at a deleted run any more.
"""

from __future__ import annotations

import uuid
from functools import cache

from django.db import connections

from ...models import Run
from ..prune import BELONGING, Pruned
from .arrays import uuid_array


@cache
def _sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    run = quote(Run._meta.db_table)
    doomed = "SELECT id FROM doomed"
    ctes = ["doomed(id) AS (SELECT unnest(%s::uuid[]))"]
    for n, model in enumerate(BELONGING):
        table = quote(model._meta.db_table)
        ctes.append(f"d{n} AS (DELETE FROM {table} WHERE run_id IN ({doomed}) RETURNING 1)")
    ctes.append(f"runs AS (DELETE FROM {run} WHERE id IN ({doomed}) RETURNING 1)")
    counts = ", ".join(f"(SELECT count(*) FROM {name})" for name in ("runs", "d0", "d1", "d2"))
    return f"WITH {', '.join(ctes)} SELECT {counts}"


def delete_rows(alias: str, ids: list[uuid.UUID]) -> Pruned:
    """Delete these runs and what belongs to them (``prune.BELONGING``), in one statement."""
    # Not prepared: one statement per batch of hundreds of runs gains nothing from it.
    with connections[alias].cursor() as cursor:
        cursor.execute(_sql(alias), [uuid_array(ids)])
        runs, steps, logs, events = cursor.fetchone()
    return Pruned(runs=runs, steps=steps, logs=logs, events=events)
