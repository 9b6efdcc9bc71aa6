"""Rows that do not hold what this version writes: hand edits, migrations, older versions.

One bad row costs that row, never the worker: it is reported once in the log, as
``event=malformed_row``, and either healed (where what it should hold is known, such as
an empty error history) or failed with ``MalformedRun``, so that no worker sweeps or
executes it again and again.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

logger = logging.getLogger("django_durable")


def report_malformed(run_id: uuid.UUID, problem: str, action: str) -> None:
    """Log a malformed run once, when something was done about it."""
    logger.error(
        "run=%s event=malformed_row problem=%r action=%s", run_id, _preview(problem), action
    )


def describe_stored(value: Any) -> str:
    """A stored value, short enough for a message: its JSON type and the start of it."""
    if value is None:
        return "null"
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    return f"{kinds.get(type(value), 'a number')} ({_preview(repr(value))})"


def error_history(value: Any) -> tuple[list[dict[str, Any]], str | None]:
    """A run's stored ``errors`` to append to, and what was wrong with it (None if
    nothing): anything but a list is replaced by an empty history."""
    if isinstance(value, list):
        return value, None
    return [], f"errors is {describe_stored(value)}, not a list"


def _preview(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."
