"""Another try for transactions MySQL/MariaDB aborted as deadlock victims."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError, connections

T = TypeVar("T")

# Deadlock, lock wait timeout: InnoDB rolled the whole transaction back, so it is safe
# to run it again, unless it was part of a caller's transaction.
RETRYABLE_MYSQL_ERRORS = {1213, 1205}
ATTEMPTS = 3


def retry_deadlocks(alias: str, operation: Callable[[], T]) -> T:
    connection = connections[alias]
    for attempt in range(1, ATTEMPTS + 1):
        outer_transaction = connection.in_atomic_block
        try:
            return operation()
        except OperationalError as error:
            code = error.args[0] if error.args else None
            if (
                connection.vendor != "mysql"
                or code not in RETRYABLE_MYSQL_ERRORS
                or outer_transaction
                or attempt == ATTEMPTS
            ):
                raise
            time.sleep(0.01 * attempt)
    raise AssertionError("unreachable")
