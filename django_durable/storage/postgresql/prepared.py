"""PostgreSQL statements on the worker's hot path, as server-side prepared statements.

The claim and a step's checkpoint run thousands of times a second with the same text, so
PostgreSQL parses and plans them once per connection (psycopg's protocol-level prepare,
which PgBouncer 1.21+ supports in transaction pooling mode). They go through a psycopg
cursor with server-side binding, kept per connection, rather than Django's cursor, whose
client-side binding sends every statement as new text.

Django opens psycopg connections with ``prepare_threshold=None``, which turns preparing
off altogether; unless the database ``OPTIONS`` set it to None on purpose, the threshold
is raised to "never automatically" so only these statements are prepared.

psycopg names prepared statements ``_pg3_0``, ``_pg3_1``... in the same order on every
connection, so through a transaction pooler a server connection may hold another
client's ``_pg3_0`` for a different statement, and binding to it would run that
statement with our parameters. Each connection's names start at a random number
instead, so a pooler can only make a statement missing, which is safe to run again.

A transaction pooler that cannot keep prepared statements (PgBouncer before 1.21, or
without ``max_prepared_statements``) gives each transaction whichever server connection
is free: a statement prepared on one is missing on the next. The first such error stops
preparing on that alias for the life of the process, with one log line, and the
statement runs again unprepared: the server refused it before executing anything, so
nothing ran twice.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ...conf import durable_settings

logger = logging.getLogger("django_durable")

# Statements other code runs on the connection are never prepared behind its back.
ONLY_WHEN_ASKED = 2**31 - 1

# "prepared statement does not exist", "prepared statement already exists", "bind message
# supplies 13 parameters, but prepared statement requires 9": the server connection is
# not the one this client prepared on. Each is refused before anything executes.
_POOLED_STATES = {"26000", "42P05", "08P01"}
# "cached plan must not change result type": the schema changed under the statement.
_CHANGED_PLAN = "0A000"

# Aliases that lost a prepared statement to a pooler; every thread's connection to them
# runs unprepared from then on.
_not_preparing: set[str] = set()
_not_preparing_lock = threading.Lock()
# Per thread: aliases whose transaction needs no savepoint around a prepared statement.
_unguarded = threading.local()


def prepares(connection: BaseDatabaseWrapper) -> bool:
    """Whether hot-path statements are prepared on this connection."""
    options = connection.settings_dict.get("OPTIONS") or {}
    opted_out = "prepare_threshold" in options and options["prepare_threshold"] is None
    return (
        durable_settings.PREPARE_STATEMENTS
        and not opted_out
        and connection.alias not in _not_preparing
    )


def _raw_cursor(connection: BaseDatabaseWrapper) -> Any:
    """This connection's server-side binding cursor, made once per psycopg connection."""
    import psycopg

    connection.ensure_connection()
    raw = connection.connection
    cached = getattr(connection, "_durable_cursor", None)
    if cached is not None and cached[0] is raw and not cached[1].closed:
        return cached[1]
    if raw.prepare_threshold is None and prepares(connection):
        raw.prepare_threshold = ONLY_WHEN_ASKED
        names = getattr(raw, "_prepared", None)  # psycopg's PrepareManager
        if getattr(names, "_prepared_idx", None) == 0:
            names._prepared_idx = secrets.randbits(48)  # type: ignore[union-attr]
    cursor = psycopg.Cursor(raw)
    connection._durable_cursor = (raw, cursor)  # type: ignore[attr-defined]
    return cursor


def _sqlstate(error: DatabaseError) -> str | None:
    return getattr(error.__cause__, "sqlstate", None)


def _stop_preparing(connection: BaseDatabaseWrapper, error: DatabaseError) -> None:
    with _not_preparing_lock:
        first = connection.alias not in _not_preparing
        _not_preparing.add(connection.alias)
    if connection.connection.prepare_threshold == ONLY_WHEN_ASKED:
        connection.connection.prepare_threshold = None  # back to Django's default
    if first:
        logger.warning(
            "event=prepared_statements_off alias=%s reason=%s hint=%s",
            connection.alias,
            str(error).strip(),
            "the server connection changed between statements (a transaction pooler such as "
            "PgBouncer before 1.21 or without max_prepared_statements); running unprepared",
        )


def _unguarded_aliases() -> set[str]:
    if not hasattr(_unguarded, "aliases"):
        _unguarded.aliases = set()
    return _unguarded.aliases  # type: ignore[no-any-return]


@contextmanager
def unguarded(alias: str) -> Iterator[None]:
    """Prepared statements inside this block's transaction run without a savepoint: a
    statement the server does not have aborts the transaction, which its caller then
    writes again another way (completions.py)."""
    aliases = _unguarded_aliases()
    aliases.add(alias)
    try:
        yield
    finally:
        aliases.discard(alias)


def execute(alias: str, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
    """Run ``sql`` (``%s`` or ``%(name)s`` placeholders), prepared if allowed; return
    the cursor to read.

    A prepared statement the server does not have runs again unprepared, and the alias
    stops preparing; one whose result type changed with the schema is prepared again,
    once. Inside the caller's transaction, where the refused statement's error would
    abort it, the prepared statement runs in a savepoint (two more round trips, still
    cheaper than planning the statement again every time), except in ``unguarded``.
    """
    connection = connections[alias]
    cursor = _raw_cursor(connection)
    connection.validate_no_broken_transaction()
    prepare = prepares(connection)
    if not prepare:
        with connection.wrap_database_errors:
            cursor.execute(sql, params, prepare=False)
        return cursor
    in_transaction = connection.in_atomic_block or not connection.get_autocommit()
    guarded = in_transaction and alias not in _unguarded_aliases()
    try:
        with (
            transaction.atomic(using=alias) if guarded else nullcontext(),
            connection.wrap_database_errors,
        ):
            cursor.execute(sql, params, prepare=True)
        return cursor
    except DatabaseError as error:
        state = _sqlstate(error)
        if state in _POOLED_STATES:
            _stop_preparing(connection, error)
            prepare = False
        elif state == _CHANGED_PLAN and not in_transaction:
            with connection.wrap_database_errors:
                # psycopg forgets its prepared statements when it sees DEALLOCATE ALL.
                cursor.execute("DEALLOCATE ALL")
        else:
            raise
    with connection.wrap_database_errors:
        cursor.execute(sql, params, prepare=prepare)
    return cursor
