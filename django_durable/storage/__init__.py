"""Storage: the protocol the engine talks to, and its database implementations."""

from __future__ import annotations

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
    """The database storage for ``alias``: PostgreSQL's own, or the portable one."""
    from django.db import connections

    if connections[alias].vendor == "postgresql":
        from .postgresql import PostgresStorage

        return PostgresStorage(alias)
    from .orm import ORMStorage

    return ORMStorage(alias)


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
