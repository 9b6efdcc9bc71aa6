"""The library's own writes: transactions that take the write lock up front, and another
try when the database gave up on a lock.

Whatever the project chose (Django's stock SQLite has DEFERRED transactions, a 5 s busy
timeout and a rollback journal), our own transactions on SQLite begin IMMEDIATE
(``sqlite/transactions.py``): they take the write lock at BEGIN, waiting for it as long
as the busy timeout allows, so a transaction that reads first never has to upgrade a
read lock.

What still fails on a lock (the busy timeout passed; on MySQL/MariaDB a deadlock victim
or a lock wait timeout) was rolled back entirely, so it is run again after a short
backoff, unless it ran inside a caller's transaction: only the caller can run that again,
so there the error surfaces. (PostgreSQL waits for its locks unless a ``lock_timeout`` is
set; its deadlock victims and lock timeouts are retried alike.)
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from django.db import DatabaseError, OperationalError, connections, transaction

from ..exceptions import StorageError
from . import storage_class
from .base import Lease, StorageBusy

T = TypeVar("T")
P = ParamSpec("P")

logger = logging.getLogger("django_durable")

# Deadlock, lock wait timeout: InnoDB rolled the whole transaction back.
RETRYABLE_MYSQL_ERRORS = {1213, 1205}
# SQLITE_BUSY ("database is locked", and BUSY_SNAPSHOT in WAL), SQLITE_LOCKED.
RETRYABLE_SQLITE_ERRORS = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
# deadlock_detected, lock_not_available (lock_timeout, NOWAIT).
RETRYABLE_POSTGRESQL_ERRORS = {"40P01", "55P03"}
ATTEMPTS = 5
BACKOFF = 0.02  # seconds before the second try, doubled for each one after

# Per thread (Django connections are per thread): aliases with one of our writes running.
_running = threading.local()


def is_lock_error(error: BaseException) -> bool:
    """Did the database give up waiting for a lock (so the statement changed nothing)?"""
    if not isinstance(error, OperationalError):
        return False
    cause = error.__cause__
    if isinstance(cause, sqlite3.Error):
        return cause.sqlite_errorcode & 0xFF in RETRYABLE_SQLITE_ERRORS  # the primary code
    if getattr(cause, "sqlstate", None) in RETRYABLE_POSTGRESQL_ERRORS:
        return True
    return bool(error.args) and error.args[0] in RETRYABLE_MYSQL_ERRORS


def storage_error(lease: Lease, error: DatabaseError, what: str) -> StorageError:
    """``error`` as the StorageError to raise; StorageBusy when it was a lock timeout
    (nothing was written and the lease is still ours, so the run is released at once)."""
    kind = StorageBusy if is_lock_error(error) else StorageError
    return kind(f"run {lease.run_id}: {what}: {error}")


@contextmanager
def own_transaction(alias: str) -> Iterator[None]:
    """A transaction of ours, begun as the alias's storage class begins its own (on
    SQLite IMMEDIATE, whatever the project's ``transaction_mode``); inside a transaction
    already open, a savepoint of it."""
    if connections[alias].in_atomic_block:
        with transaction.atomic(using=alias):
            yield
        return
    with storage_class(alias).begin_transaction(alias):
        yield


def _aliases() -> set[str]:
    if not hasattr(_running, "aliases"):
        _running.aliases = set()
    return _running.aliases  # type: ignore[no-any-return]


def own_write(alias: str, operation: Callable[[], T], *, atomic: bool = True) -> T:
    """Run ``operation``, one of the library's own writes, as a unit that can be run again.

    With ``atomic`` it is one transaction (``own_transaction``); without, it must be a
    single statement, or reads, that are safe to run again. Inside a caller's
    transaction it runs once, in a savepoint when ``atomic``, and a lock error surfaces;
    inside another own write it is simply part of that one.
    """
    connection = connections[alias]
    aliases = _aliases()
    if alias in aliases:
        if atomic and not connection.in_atomic_block:
            with own_transaction(alias):
                return operation()
        return operation()
    if connection.in_atomic_block:
        if not atomic:
            return operation()
        with transaction.atomic(using=alias):
            return operation()
    for attempt in range(1, ATTEMPTS + 1):
        aliases.add(alias)
        try:
            if not atomic:
                return operation()
            with own_transaction(alias):
                return operation()
        except OperationalError as error:
            if attempt == ATTEMPTS or not is_lock_error(error):
                raise
            delay = BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            logger.debug(
                "event=lock_retry alias=%s attempt=%s retry_in=%.3f error=%s",
                alias,
                attempt,
                delay,
                error,
            )
        finally:
            aliases.discard(alias)
        time.sleep(delay)
    raise AssertionError("unreachable")


class _OnAlias(Protocol):
    alias: str


S = TypeVar("S", bound=_OnAlias)


def own_write_method(
    *, atomic: bool = True
) -> Callable[[Callable[Concatenate[S, P], T]], Callable[Concatenate[S, P], T]]:
    """Decorate a storage method (on ``self.alias``) to run as ``own_write``."""

    def decorate(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
        @functools.wraps(method)
        def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
            return own_write(self.alias, lambda: method(self, *args, **kwargs), atomic=atomic)

        return wrapper

    return decorate
