"""The database clock as an ORM expression, so leases and wake times never trust a
worker's wall clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connections, models
from django.db.models.sql import Query
from django.utils import timezone


class DbNow(models.Func):
    """The database's current UTC time, plus ``seconds`` (may be negative or fractional).

    PostgreSQL's and MySQL's params are lists: their schema editors concatenate them when
    the expression is a column's ``db_default``.
    """

    output_field = models.DateTimeField()

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = float(seconds)
        super().__init__()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        return "(STATEMENT_TIMESTAMP() + make_interval(secs => %s))", [self.seconds]

    def as_mysql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        # CURRENT_TIMESTAMP follows the session time zone; stored datetimes are UTC.
        return "(UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND)", [round(self.seconds * 1e6)]

    def as_sqlite(
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, tuple[Any, ...]]:
        # Same text format Django stores, so comparisons between the two are ordered.
        return "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW', %s)", (f"{self.seconds:+.6f} seconds",)

    def as_sql(  # type: ignore[override]
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, list[Any]]:
        raise NotImplementedError(f"django_durable does not support {connection.vendor}")


def database_now(alias: str) -> datetime:
    """The database's current time, read with one SELECT."""
    connection = connections[alias]
    expression = DbNow()
    # No model: the expression reads no table (and the models use DbNow themselves).
    sql, params = Query(None).get_compiler(connection=connection).compile(expression)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        (value,) = cursor.fetchone()
    for converter in connection.ops.get_db_converters(expression):
        value = converter(value, expression, connection)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value  # type: ignore[no-any-return]
