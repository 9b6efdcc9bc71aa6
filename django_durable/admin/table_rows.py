"""Rows per table for the overview, cheap however large the tables are.

An exact ``COUNT(*)`` reads a whole table on PostgreSQL and InnoDB, so there the storage
gives the servers' own statistics (``estimated_rows``). SQLite counts: its tables are
small enough to count.
"""

from __future__ import annotations

from ..conf import durable_settings
from ..models import Run, RunEvent, RunLog, Step
from ..storage import storage_for

TABLES = {"runs": Run, "journal entries": Step, "log lines": RunLog, "events": RunEvent}


def table_rows() -> list[dict[str, object]]:
    """``[{"label", "rows", "estimated"}]`` for the run, journal, log and event tables."""
    alias = durable_settings.DATABASE
    names = {label: model._meta.db_table for label, model in TABLES.items()}
    found = storage_for(alias).estimated_rows(list(names.values()))
    if found is not None:
        return [
            {"label": label, "rows": found.get(table, 0), "estimated": True}
            for label, table in names.items()
        ]
    return [
        {"label": label, "rows": model._default_manager.using(alias).count(), "estimated": False}
        for label, model in TABLES.items()
    ]
