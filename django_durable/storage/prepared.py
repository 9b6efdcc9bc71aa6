"""PostgreSQL statements on the worker's hot path, as server-side prepared statements.

The claim and a step's checkpoint run thousands of times a second with the same text, so
PostgreSQL parses and plans them once per connection (psycopg's protocol-level prepare,
which PgBouncer 1.21+ supports in transaction pooling mode). They go through a psycopg
cursor with server-side binding, kept per connection, rather than Django's cursor, whose
client-side binding sends every statement as new text.

Django opens psycopg connections with ``prepare_threshold=None``, which turns preparing
off altogether; unless the database ``OPTIONS`` set it to None on purpose, the threshold
is raised to "never automatically" so only these statements are prepared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import durable_settings

# Statements other code runs on the connection are never prepared behind its back.
ONLY_WHEN_ASKED = 2**31 - 1

# "cached plan must not change result type" (the schema changed under a prepared
# statement) and "prepared statement does not exist" (a pooler or DISCARD ALL dropped it).
_STALE_STATEMENT_STATES = {"0A000", "26000"}


def prepares(connection: BaseDatabaseWrapper) -> bool:
    """Whether hot-path statements are prepared on this connection."""
    options = connection.settings_dict.get("OPTIONS") or {}
    opted_out = "prepare_threshold" in options and options["prepare_threshold"] is None
    return bool(durable_settings.PREPARE_STATEMENTS) and not opted_out


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
    cursor = psycopg.Cursor(raw)
    connection._durable_cursor = (raw, cursor)  # type: ignore[attr-defined]
    return cursor


def _stale_statement(error: DatabaseError) -> bool:
    return getattr(error.__cause__, "sqlstate", None) in _STALE_STATEMENT_STATES


def execute(alias: str, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
    """Run ``sql`` (``%s`` or ``%(name)s`` placeholders), prepared if allowed; return
    the cursor to read.

    A prepared statement the server no longer has, or whose result type changed with
    the schema, is prepared again, once, when no transaction is open (inside one, the
    statement's error aborts it, and its rollback makes psycopg forget every prepared
    statement, so the caller's retry prepares afresh).
    """
    connection = connections[alias]
    prepare = prepares(connection)
    for attempt in (1, 2):
        cursor = _raw_cursor(connection)
        connection.validate_no_broken_transaction()
        try:
            with connection.wrap_database_errors:
                cursor.execute(sql, params, prepare=prepare)
            return cursor
        except DatabaseError as error:
            if attempt == 2 or not prepare or not _stale_statement(error):
                raise
            if connection.in_atomic_block or not connection.get_autocommit():
                raise
            with connection.wrap_database_errors:
                # psycopg forgets its prepared statements when it sees DEALLOCATE ALL.
                cursor.execute("DEALLOCATE ALL")
    raise AssertionError("unreachable")
