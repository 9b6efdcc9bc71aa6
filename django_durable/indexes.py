"""Indexes and unique constraints that are partial where the database allows it and
full elsewhere."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.sql import Query


class _WhereSupported:
    """Keeps ``where`` beside Django's own arguments, in migrations too, and renders it
    only where the database has partial indexes."""

    def __init__(self, *args: Any, where: models.Q, **kwargs: Any) -> None:
        self.where = where
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        path, args, kwargs = super().deconstruct()  # type: ignore[misc]
        kwargs["where"] = self.where
        return path, args, kwargs

    def _get_condition_sql(self, model: type[models.Model], schema_editor: Any) -> str | None:
        return _where_sql(self.where, model, schema_editor)


class PartialIndexWhereSupported(_WhereSupported, models.Index):
    """Index filtered by ``where`` on PostgreSQL and SQLite, unfiltered on MySQL/MariaDB.

    Django's own ``condition=`` does the same but makes MySQL report ``models.W037`` for
    every project that uses the app; keeping the filter under another name avoids that.
    Put the filtered column first in ``fields`` so the MySQL index still serves the query.
    """


class UniqueWhereSupported(_WhereSupported, models.UniqueConstraint):
    """A unique constraint filtered by ``where`` on PostgreSQL and SQLite (a partial
    unique index), unfiltered on MySQL/MariaDB.

    Django's ``condition=`` drops the constraint altogether where partial indexes are
    not supported; this keeps it. Rows the filter leaves out must be ones that cannot
    collide anyway (NULL in a column), so the constraint means the same everywhere.
    """

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UniqueWhereSupported)
            and self.where == other.where
            and super().__eq__(other)
        )


def _where_sql(where: models.Q, model: type[models.Model], schema_editor: Any) -> str | None:
    connection = schema_editor.connection
    if not connection.features.supports_partial_indexes:
        return None
    query = Query(model=model, alias_cols=False)
    condition = query.build_where(where)
    sql, params = condition.as_sql(query.get_compiler(connection=connection), connection)
    return sql % tuple(schema_editor.quote_value(p) for p in params)
