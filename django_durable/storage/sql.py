"""Hand-built SQL for the fenced writes on a worker's hot path.

A checkpoint is written once per step, so it skips the ORM's query building: values are
adapted by the model fields themselves (``get_db_prep_save``), column names come from
the models, and on PostgreSQL the fencing UPDATE and the inserts travel as one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.sql import Query


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return field


def set_clause(
    model: type[Model], changes: Mapping[str, Any], connection: BaseDatabaseWrapper
) -> tuple[str, list[Any]]:
    """``col = %s, ...`` for ``changes``; values may be database expressions (``DbNow``)."""
    quote = connection.ops.quote_name
    parts: list[str] = []
    params: list[Any] = []
    query: Query | None = None
    for name, value in changes.items():
        field = _field(model, name)
        if hasattr(value, "resolve_expression"):  # DbNow, F("attempt") + 1
            if query is None:  # most writes (a run's completion) have no expression
                query = Query(model)
                compiler = query.get_compiler(connection=connection)
            resolved = value.resolve_expression(query, allow_joins=False, for_save=True)
            sql, expression_params = compiler.compile(resolved)
            parts.append(f"{quote(str(field.column))} = {sql}")
            params.extend(expression_params)
        else:
            parts.append(f"{quote(str(field.column))} = %s")
            params.append(field.get_db_prep_save(value, connection))
    return ", ".join(parts), params


_ROW_TEMPLATES: dict[tuple[Any, ...], tuple[str, str, list[Field[Any, Any]]]] = {}


def _row_template(
    model: type[Model], names: Sequence[str], connection: BaseDatabaseWrapper, cast: bool
) -> tuple[str, str, list[Field[Any, Any]]]:
    key = (model, tuple(names), connection.vendor, cast)
    if key not in _ROW_TEMPLATES:
        quote = connection.ops.quote_name
        fields = [_field(model, name) for name in names]
        columns = ", ".join(quote(str(field.column)) for field in fields)
        row_sql = ", ".join(
            f"CAST(%s AS {field.db_type(connection)})" if cast else "%s" for field in fields
        )
        _ROW_TEMPLATES[key] = (columns, f"({row_sql})", fields)
    return _ROW_TEMPLATES[key]


def insert_rows(
    model: type[Model],
    names: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    connection: BaseDatabaseWrapper,
    *,
    cast: bool = False,
) -> tuple[str, list[str], list[Any]]:
    """Column list, one ``(%s, ...)`` per row, and the adapted parameters.

    ``cast`` wraps each placeholder in a CAST to the column's type, which PostgreSQL
    needs when the rows come from a SELECT rather than a VALUES list.
    """
    columns, row_sql, fields = _row_template(model, names, connection, cast)
    templates: list[str] = []
    params: list[Any] = []
    for row in rows:
        templates.append(row_sql)
        params.extend(field.get_db_prep_save(row[field.name], connection) for field in fields)
    return columns, templates, params
