"""An index that is partial where the database allows it and a full composite elsewhere."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.sql import Query


class PartialIndexWhereSupported(models.Index):
    """Index filtered by ``where`` on PostgreSQL and SQLite, unfiltered on MySQL/MariaDB.

    Django's own ``condition=`` does the same but makes MySQL report ``models.W037`` for
    every project that uses the app; keeping the filter under another name avoids that.
    Put the filtered column first in ``fields`` so the MySQL index still serves the query.
    """

    def __init__(self, *args: Any, where: models.Q, **kwargs: Any) -> None:
        self.where = where
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        path, args, kwargs = super().deconstruct()
        kwargs["where"] = self.where
        return path, args, kwargs

    def _get_condition_sql(self, model: type[models.Model], schema_editor: Any) -> str | None:
        connection = schema_editor.connection
        if not connection.features.supports_partial_indexes:
            return None
        query = Query(model=model, alias_cols=False)
        where = query.build_where(self.where)
        sql, params = where.as_sql(query.get_compiler(connection=connection), connection)
        return sql % tuple(schema_editor.quote_value(p) for p in params)
