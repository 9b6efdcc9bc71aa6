"""PostgreSQL: a batch of new runs inserted by one ``INSERT ... SELECT FROM unnest(...)``.

Each column travels as one array, so the statement's size and the work to build it grow
with the number of columns, not of runs times columns as a multi-row ``VALUES`` does.
The column values come from ``new_run_columns()`` (the portable path builds its rows from
the same map); columns a run leaves unset take the model field's default, computed here
per run as ``Run()`` would. Times are the database's: a delayed run's wake time is
``STATEMENT_TIMESTAMP()`` plus its delay, an immediate run's ``run_after`` the column's
database default.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections, models

from ...models import Run
from ..base import NewRun, RunRecord
from ..convert import record_from_columns
from ..dbclock import DbNow
from ..waits import new_run_columns

# Computed in the statement from each run's delay (seconds) or datetime, not sent as is.
TIMES = ("run_after", "wake_at")


@cache
def _fields(alias: str) -> tuple[tuple[models.Field[Any, Any], str], ...]:
    """The run table's columns sent as arrays, each with its array type."""
    connection = connections[alias]
    sent = []
    for field in Run._meta.concrete_fields:
        if field.attname in TIMES:
            continue
        kind = "text" if isinstance(field, models.JSONField) else field.db_type(connection)
        sent.append((field, f"{kind}[]"))
    return tuple(sent)


@cache
def _sql(alias: str) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = _fields(alias)
    names = [f"c{n}" for n in range(len(fields))]
    arrays = ", ".join(f"%s::{array}" for _, array in fields)
    values = [
        f"u.{name}::jsonb" if isinstance(field, models.JSONField) else f"u.{name}"
        for (field, _), name in zip(fields, names, strict=True)
    ]
    when = "COALESCE(u.at, STATEMENT_TIMESTAMP() + make_interval(secs => u.delay))"
    columns = [quote(str(field.column)) for field, _ in fields] + [quote(t) for t in TIMES]
    return (
        f"INSERT INTO {quote(Run._meta.db_table)} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)}, "
        f"CASE WHEN u.delayed THEN {when} ELSE STATEMENT_TIMESTAMP() END, "
        f"CASE WHEN u.delayed THEN {when} END "
        f"FROM unnest({arrays}, %s::timestamptz[], %s::float8[], %s::boolean[]) "
        f"AS u({', '.join(names)}, at, delay, delayed) "
        f"RETURNING {quote('id')}, {quote('run_after')}, {quote('wake_at')}"
    )


def insert_runs(alias: str, news: Sequence[NewRun]) -> list[RunRecord]:
    """Insert a run per ``NewRun`` in one statement; return their records as stored."""
    fields = [field for field, _ in _fields(alias)]
    columns: list[list[Any]] = [[] for _ in fields]
    at: list[datetime | None] = []
    delay: list[float | None] = []
    delayed: list[bool] = []
    rows = []
    # A default that is a value, or a fresh list or dict (the same JSON every time), is
    # worked out once per batch; others (the id) once per run.
    fixed = {
        field.attname: field.get_default()
        for field in fields
        if field.has_default() and (not callable(field.default) or field.default in (list, dict))
    }
    dumped = {name: json.dumps(value) for name, value in fixed.items()}
    for new in news:
        values = new_run_columns(new)
        for field, column in zip(fields, columns, strict=True):
            name = field.attname
            if name in values:
                value = values[name]
                if value is not None and isinstance(field, models.JSONField):
                    column.append(json.dumps(value))
                else:
                    column.append(value)
            elif name in fixed:
                default = fixed[name]
                # Each record gets a list or dict of its own, as from Run().
                values[name] = type(default)() if isinstance(default, (list, dict)) else default
                column.append(dumped[name] if isinstance(field, models.JSONField) else default)
            else:
                values[name] = value = field.get_default()
                column.append(value)
        when = values.get("run_after")
        at.append(when if isinstance(when, datetime) else None)
        delay.append(when.seconds if isinstance(when, DbNow) else None)
        delayed.append(when is not None)
        rows.append(values)
    with connections[alias].cursor() as cursor:
        cursor.execute(_sql(alias), [*columns, at, delay, delayed])
        times = {run_id: (run_after, wake_at) for run_id, run_after, wake_at in cursor.fetchall()}
    for values in rows:
        values["run_after"], values["wake_at"] = times[values["id"]]
    return [record_from_columns(values) for values in rows]
