"""Storage: the protocol the engine talks to, and its database implementations."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Storage
    from .orm import ORMStorage

# Set by ``django_durable.testing.use_storage()``: the storage every call site gets.
_installed: list[Storage] = []


def get_storage() -> Storage:
    """The storage for ``DURABLE["DATABASE"]`` (read at call time), or the one a test
    installed with ``django_durable.testing.use_storage()``."""
    if _installed:
        return _installed[-1]
    from ..conf import durable_settings

    return storage_for(durable_settings.DATABASE)


def storage_for(alias: str) -> ORMStorage:
    """The database storage for ``alias``: its vendor's class (``storage_class``)."""
    return storage_class(alias)(alias)


def storage_class(alias: str) -> type[ORMStorage]:
    """The storage class for ``alias``'s database, chosen by its vendor: the one place
    that looks at it. Shared code asks the class what it needs to know (its attributes
    and hooks), never the vendor."""
    from django.db import connections

    return _class_for(connections[alias].vendor)


# Each imported only when chosen: psycopg or mysqlclient may not be installed.
def _postgresql() -> type[ORMStorage]:
    from .postgresql import PostgresStorage

    return PostgresStorage


def _mysql() -> type[ORMStorage]:
    from .mysql import MySQLStorage

    return MySQLStorage


def _sqlite() -> type[ORMStorage]:
    from .sqlite import SQLiteStorage

    return SQLiteStorage


def _portable() -> type[ORMStorage]:
    from .orm import ORMStorage

    return ORMStorage


_VENDORS: dict[str, Callable[[], type[ORMStorage]]] = {
    "postgresql": _postgresql,
    "mysql": _mysql,
    "sqlite": _sqlite,
}


@functools.cache
def _class_for(vendor: str) -> type[ORMStorage]:
    return _VENDORS.get(vendor, _portable)()


def on_commit(storage: Storage, callback: Callable[[], object]) -> None:
    """Call ``callback`` once the caller's transaction on ``storage`` commits.

    A storage with its own transactions (``InMemoryStorage``) has its own ``on_commit``;
    otherwise it is Django's, on ``DURABLE["DATABASE"]``.
    """
    own: Callable[[Callable[[], object]], None] | None = getattr(storage, "on_commit", None)
    if own is not None:
        own(callback)
        return
    from django.db import transaction

    from ..conf import durable_settings

    transaction.on_commit(callback, using=durable_settings.DATABASE)
