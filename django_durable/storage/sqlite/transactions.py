"""SQLite's own transactions begin IMMEDIATE, whatever the project chose.

Django's stock SQLite has DEFERRED transactions: a transaction that reads first takes a
read lock and must upgrade it to write, which SQLite refuses at once, without waiting,
while another connection holds the write lock. BEGIN IMMEDIATE takes the write lock at
BEGIN instead, waiting for it as long as the busy timeout allows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction


@contextmanager
def immediate_transaction(alias: str) -> Iterator[None]:
    """A new transaction (not nested) that begins IMMEDIATE; the project's
    ``transaction_mode`` is back in place for its own transactions as soon as BEGIN ran."""
    connection = connections[alias]
    # Connecting reads OPTIONS into transaction_mode, so connect before overriding it.
    connection.ensure_connection()
    chosen = connection.transaction_mode  # type: ignore[attr-defined]
    connection.transaction_mode = "IMMEDIATE"  # type: ignore[attr-defined]
    try:
        with transaction.atomic(using=alias):
            connection.transaction_mode = chosen  # type: ignore[attr-defined]
            yield
    finally:
        connection.transaction_mode = chosen  # type: ignore[attr-defined]
