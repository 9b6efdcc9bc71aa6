"""One row at a time: a row that breaks what the library does with it costs that row.

Sweeps and finishing children act on rows other code wrote. Each row is processed in
a savepoint of the surrounding transaction; when the row itself is the problem (a value
this version does not expect), the savepoint is rolled back, the row is reported and
handed to a fallback that settles it for good, and the rest carries on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, connections, transaction

from ..malformed import report_malformed
from .own_writes import is_lock_error

T = TypeVar("T")


def _is_the_databases(alias: str, error: Exception) -> bool:
    """A lock error, or a connection that no longer answers: not the row's fault, so the
    whole write fails and is run again (own_write, the worker's backoff)."""
    if not isinstance(error, DatabaseError):
        return False
    return is_lock_error(error) or not connections[alias].is_usable()


def one_row(
    alias: str,
    run_id: uuid.UUID,
    process: Callable[[], T],
    *,
    settle: Callable[[str], str],
) -> T | None:
    """``process()`` in a savepoint; if the row breaks it, ``settle(problem)`` (in a
    savepoint of its own) ends the row some other way and says how, for the report."""
    try:
        with transaction.atomic(using=alias):
            return process()
    except Exception as error:
        if _is_the_databases(alias, error):
            raise
        problem = f"{type(error).__name__}: {error}"
    with transaction.atomic(using=alias):
        action = settle(problem)
    report_malformed(run_id, problem, action)
    return None
