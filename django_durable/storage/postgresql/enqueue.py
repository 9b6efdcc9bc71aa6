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
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connections, models

from ...models import Run
from ...notify import CHANNEL
from ...status import RunStatus
from ..base import NewRun, RunRecord
from ..convert import record_from_columns
from ..dbclock import DbNow
from ..waits import new_run_columns
from . import prepared

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


def _insert_into(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    columns = [quote(str(field.column)) for field, _ in _fields(alias)] + list(map(quote, TIMES))
    return f"INSERT INTO {quote(Run._meta.db_table)} ({', '.join(columns)})"


def _times(delayed: str, when: str) -> str:
    """``run_after`` and ``wake_at``: a delayed run's wake time, or now and none."""
    return (
        f"CASE WHEN {delayed} THEN {when} ELSE STATEMENT_TIMESTAMP() END, "
        f"CASE WHEN {delayed} THEN {when} END"
    )


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
    return (
        f"{_insert_into(alias)} SELECT {', '.join(values)}, {_times('u.delayed', when)} "
        f"FROM unnest({arrays}, %s::timestamptz[], %s::float8[], %s::boolean[]) "
        f"AS u({', '.join(names)}, at, delay, delayed) "
        f"RETURNING {quote('id')}, {quote('run_after')}, {quote('wake_at')}"
    )


@cache
def _defaults(alias: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Defaults that are a value, or a fresh list or dict (the same JSON every time),
    with the JSON of each: worked out once; others (the id) once per run."""
    fixed = {
        field.attname: field.get_default()
        for field, _ in _fields(alias)
        if field.has_default() and (not callable(field.default) or field.default in (list, dict))
    }
    return fixed, {name: json.dumps(value) for name, value in fixed.items()}


@dataclass
class _Row:
    values: dict[str, Any]  # by attribute name, as the run's record will hold them
    sent: list[Any]  # one per _fields() column
    at: datetime | None
    delay: float | None
    delayed: bool


def _row(alias: str, new: NewRun) -> _Row:
    fixed, dumped = _defaults(alias)
    values = new_run_columns(new)
    sent = []
    for field, _ in _fields(alias):
        name = field.attname
        if name in values:
            value = values[name]
            if value is not None and isinstance(field, models.JSONField):
                sent.append(json.dumps(value))
            else:
                sent.append(value)
        elif name in fixed:
            default = fixed[name]
            # Each record gets a list or dict of its own, as from Run().
            values[name] = type(default)() if isinstance(default, (list, dict)) else default
            sent.append(dumped[name] if isinstance(field, models.JSONField) else default)
        else:
            values[name] = value = field.get_default()
            sent.append(value)
    when = values.get("run_after")
    return _Row(
        values,
        sent,
        at=when if isinstance(when, datetime) else None,
        delay=when.seconds if isinstance(when, DbNow) else None,
        delayed=when is not None,
    )


def insert_runs(alias: str, news: Sequence[NewRun]) -> list[RunRecord]:
    """Insert a run per ``NewRun`` in one statement; return their records as stored."""
    rows = [_row(alias, new) for new in news]
    columns = [list(column) for column in zip(*(row.sent for row in rows), strict=True)]
    at = [row.at for row in rows]
    delay = [row.delay for row in rows]
    delayed = [row.delayed for row in rows]
    with connections[alias].cursor() as cursor:
        cursor.execute(_sql(alias), [*columns, at, delay, delayed])
        times = {run_id: (run_after, wake_at) for run_id, run_after, wake_at in cursor.fetchall()}
    for row in rows:
        row.values["run_after"], row.values["wake_at"] = times[row.values["id"]]
    return [record_from_columns(row.values) for row in rows]


@cache
def _one_sql(alias: str) -> str:
    connection = connections[alias]
    quote = connection.ops.quote_name
    fields = _fields(alias)
    values = [
        f"%(c{n})s::jsonb" if isinstance(field, models.JSONField) else f"%(c{n})s::{array[:-2]}"
        for n, (field, array) in enumerate(fields)
    ]
    when = (
        "COALESCE(%(at)s::timestamptz, "
        "STATEMENT_TIMESTAMP() + make_interval(secs => %(delay)s::float8))"
    )
    return (
        f"{_insert_into(alias)} "
        f"VALUES ({', '.join(values)}, {_times('%(delayed)s::boolean', when)}) "
        f"RETURNING {quote('run_after')}, {quote('wake_at')}, "
        f"CASE WHEN {quote('status')} = %(pending)s "
        f"THEN pg_notify(%(channel)s, {quote('queue_name')}) END"
    )


def insert_run_announced(alias: str, new: NewRun) -> RunRecord:
    """Insert one run and, if it is runnable now, NOTIFY its queue, in one prepared
    statement: for an enqueue in autocommit, one round trip and one commit instead of
    Django's INSERT and a NOTIFY transaction of its own."""
    row = _row(alias, new)
    params: dict[str, Any] = {f"c{n}": value for n, value in enumerate(row.sent)}
    params.update(
        at=row.at,
        delay=row.delay,
        delayed=row.delayed,
        pending=RunStatus.PENDING.value,
        channel=CHANNEL,
    )
    row.values["run_after"], row.values["wake_at"], _ = prepared.execute(
        alias, _one_sql(alias), params
    ).fetchone()
    return record_from_columns(row.values)
