"""Storage: the protocol the engine talks to, and its Django ORM implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Storage


def get_storage() -> Storage:
    """The storage for ``DURABLE["DATABASE"]`` (read at call time)."""
    from ..conf import durable_settings
    from .orm import ORMStorage

    return ORMStorage(durable_settings.DATABASE)
