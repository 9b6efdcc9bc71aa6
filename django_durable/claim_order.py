"""The order runs are claimed in, written once: highest priority first, then the
earliest ``run_after``, then the id (UUIDv7, so the oldest).

The claim indexes are built on it, and the ORM claim, the hand-built SQL claims and every
sort of claimed runs take it from here, so they can never disagree with the indexes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CLAIM_ORDER = ("-priority", "run_after", "id")


def claim_order_sql(quote: Callable[[str], str] = str) -> str:
    """The order as an SQL ``ORDER BY`` list (the fields' names are their columns)."""
    return ", ".join(
        f"{quote(name[1:])} DESC" if name.startswith("-") else quote(name) for name in CLAIM_ORDER
    )


def claim_sort_key(run: Any) -> tuple[Any, ...]:
    """The order as a Python sort key, for anything with those attributes."""
    return tuple(
        -getattr(run, name[1:]) if name.startswith("-") else getattr(run, name)
        for name in CLAIM_ORDER
    )
