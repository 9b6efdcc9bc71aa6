"""MySQL and MariaDB: the portable ORM storage, with MariaDB's transaction limits and
the server's row estimates.

``get_storage()`` chooses it, once, for an alias whose vendor is MySQL (MariaDB too).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.db import connections

from ..orm import ORMStorage
from .limits import set_mariadb_limits


class MySQLStorage(ORMStorage):
    def session_limits(self) -> Callable[[float | None], None] | None:
        connection = connections[self.alias]
        if not getattr(connection, "mysql_is_mariadb", False):
            return None  # MySQL cannot end a transaction after a time limit
        return functools.partial(set_mariadb_limits, connection)

    def estimated_rows(self, tables: list[str]) -> dict[str, int] | None:
        # InnoDB's estimate, rougher than PostgreSQL's; an exact COUNT(*) reads the table.
        marks = ", ".join(["%s"] * len(tables))
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES "
                f"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN ({marks})",
                tables,
            )
            return {name: int(rows or 0) for name, rows in cursor.fetchall()}
