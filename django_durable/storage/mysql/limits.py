"""MariaDB's time limits for an atomic step's transaction, as session settings.

A worker frozen inside the transaction would hold its row lock for good, so MariaDB is
told to end it: ``idle_transaction_timeout`` and ``max_statement_time`` are set after
BEGIN and reset after the transaction. MySQL has no such limit.
"""

from __future__ import annotations

import math

from django.db.backends.base.base import BaseDatabaseWrapper


def set_mariadb_limits(connection: BaseDatabaseWrapper, timeout: float | None) -> None:
    """Limit the session's transactions to ``timeout`` seconds; None: the defaults."""
    with connection.cursor() as cursor:
        if timeout is None:
            cursor.execute(
                "SET SESSION idle_transaction_timeout = DEFAULT, max_statement_time = DEFAULT"
            )
        else:
            cursor.execute(
                "SET SESSION idle_transaction_timeout = %s, max_statement_time = %s",
                [max(1, math.ceil(timeout)), timeout],
            )
