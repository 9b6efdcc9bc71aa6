"""SQLite: the portable ORM storage, for a database with one writer at a time.

``get_storage()`` chooses it, once, for an alias whose vendor is SQLite.
"""

from __future__ import annotations

from ..orm import ORMStorage
from .transactions import immediate_transaction


class SQLiteStorage(ORMStorage):
    # A write transaction holds the whole database: while an atomic step's transaction
    # is open no heartbeat can run, so the step renews the worker's other leases too.
    transactions_hold_database = True
    # Takes the write lock at BEGIN, so a transaction that reads first never fails to
    # upgrade its read lock.
    begin_transaction = staticmethod(immediate_transaction)
