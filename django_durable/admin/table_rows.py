"""Rows per table for the overview, cheap however large the tables are.

An exact ``COUNT(*)`` reads a whole table on PostgreSQL and InnoDB, so the servers'
own statistics are used there (the planner's estimate, as fresh as the last ANALYZE;
InnoDB's is rougher). SQLite counts: its tables are small enough to count.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import durable_settings
from ..models import Run, RunEvent, RunLog, Step

TABLES = {"runs": Run, "journal entries": Step, "log lines": RunLog, "events": RunEvent}


def _postgresql(connection: BaseDatabaseWrapper, tables: list[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE oid IN "
            "(SELECT to_regclass(quote_ident(name)) FROM unnest(%s::text[]) AS name)",
            [tables],
        )
        # reltuples is -1 for a table never analysed or vacuumed.
        return {name: max(rows, 0) for name, rows in cursor.fetchall()}


def _mysql(connection: BaseDatabaseWrapper, tables: list[str]) -> dict[str, int]:
    marks = ", ".join(["%s"] * len(tables))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
            f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",
            tables,
        )
        return {name: int(rows or 0) for name, rows in cursor.fetchall()}


ESTIMATES: dict[str, Callable[[BaseDatabaseWrapper, list[str]], dict[str, int]]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
}


def table_rows() -> list[dict[str, object]]:
    """``[{"label", "rows", "estimated"}]`` for the run, journal, log and event tables."""
    alias = durable_settings.DATABASE
    connection = connections[alias]
    estimate = ESTIMATES.get(connection.vendor)
    names = {label: model._meta.db_table for label, model in TABLES.items()}
    if estimate is not None:
        found = estimate(connection, list(names.values()))
        return [
            {"label": label, "rows": found.get(table, 0), "estimated": True}
            for label, table in names.items()
        ]
    return [
        {"label": label, "rows": model._default_manager.using(alias).count(), "estimated": False}
        for label, model in TABLES.items()
    ]
