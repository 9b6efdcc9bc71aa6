"""PostgreSQL: a step's journal entry and the fence check as one prepared INSERT.

The checkpoint between two steps changes nothing on the run, so it needs no UPDATE and
no CTE: ``INSERT ... SELECT ... FROM run CROSS JOIN (VALUES ...) WHERE <lease matches>
FOR SHARE OF run`` inserts only while the lease holds, and its row lock orders it
against a takeover (which must lock the row to change the token). Its text depends only
on the row count, so it is built once and PostgreSQL plans it once per connection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from django.db import connections
from django.db.models import Field, Model

from ...models import Run
from .. import leases
from ..base import Lease
from . import prepared


@cache
def _fields(model: type[Model], names: tuple[str, ...]) -> list[Field[Any, Any]]:
    return [model._meta.get_field(name) for name in names]  # type: ignore[misc]


@cache
def _sql(
    alias: str, model: type[Model], names: tuple[str, ...], rows: int, check_cancel: bool
) -> str:
    quote = connections[alias].ops.quote_name
    connection = connections[alias]
    fields = _fields(model, names)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    row = ", ".join(f"CAST(%s AS {field.db_type(connection)})" for field in fields)
    values = ", ".join([f"({row})"] * rows)
    run = quote(Run._meta.db_table)
    where = leases.fence_sql(connection, check_cancel=check_cancel)
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT v.* "
        f"FROM {run} CROSS JOIN (VALUES {values}) AS v WHERE {where} FOR SHARE OF {run}"
    )


def insert_if_leased(
    alias: str,
    lease: Lease,
    model: type[Model],
    names: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    check_cancel: bool,
) -> bool:
    """Insert ``rows`` of ``model`` if ``lease`` still holds its run; return whether it did."""
    connection = connections[alias]
    names = tuple(names)
    fields = _fields(model, names)
    params = [
        field.get_db_prep_save(row[field.name], connection) for row in rows for field in fields
    ]
    params += leases.fence_params(lease, connection)
    cursor = prepared.execute(alias, _sql(alias, model, names, len(rows), check_cancel), params)
    return bool(cursor.rowcount > 0)
