"""Durations as the API takes them: a ``timedelta`` or a number of seconds.

Every public parameter that is a duration goes through :func:`to_timedelta` where the
user writes it (decoration, construction, the call), so a wrong type is a ``TypeError``
there, naming the parameter, and never a crash later in a worker.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

#: What a duration may be written as: a timedelta, or seconds.
Duration = timedelta | int | float


def to_timedelta(value: Any, parameter: str, *, positive: bool = False) -> timedelta:
    """``value`` (a timedelta, or seconds as an int or float) as a timedelta.

    ``TypeError`` for anything else (``bool`` included), ``ValueError`` for a negative or
    non-finite value, or zero when ``positive``; both name ``parameter`` and the value.
    """
    if isinstance(value, timedelta):
        delta = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{parameter} must be a finite number of seconds, got {value!r}")
        try:
            delta = timedelta(seconds=value)
        except OverflowError:
            raise ValueError(f"{parameter} is too large: {value!r} seconds") from None
    else:
        raise TypeError(
            f"{parameter} must be a timedelta or a number of seconds, "
            f"got {value!r} ({type(value).__name__})"
        )
    if delta < timedelta(0) or (positive and delta == timedelta(0)):
        raise ValueError(
            f"{parameter} must be {'positive' if positive else 'zero or more'}, got {value!r}"
        )
    return delta


def optional_timedelta(value: Any, parameter: str, *, positive: bool = False) -> timedelta | None:
    """:func:`to_timedelta`, with ``None`` passed through."""
    return None if value is None else to_timedelta(value, parameter, positive=positive)


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> timedelta:
    """A command-line age such as ``90s``, ``15m``, ``1h`` or ``7d`` as a timedelta.

    ``ValueError`` naming the accepted forms for anything else.
    """
    number, unit = text[:-1], text[-1:]
    if unit in AGE_UNITS and number.isdigit():
        return timedelta(seconds=int(number) * AGE_UNITS[unit])
    raise ValueError(
        f"{text!r} is not an age: write a whole number and a unit, s, m, h or d (e.g. 1h, 7d)"
    )
