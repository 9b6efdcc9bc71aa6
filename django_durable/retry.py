"""Retry policies: how many attempts, and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from .durations import to_timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    The delay before attempt ``n + 1`` is ``initial_delay * backoff_factor ** (n - 1)``,
    capped at ``max_delay``, then spread by up to ``jitter`` (a fraction) either way.

    ``initial_delay`` and ``max_delay`` take a ``timedelta`` or a number of seconds (kept as
    timedeltas). Every field is checked here, at construction: a wrong type is a
    ``TypeError`` and an out-of-range value a ``ValueError``, both naming the field.
    """

    max_attempts: int = 3
    # Annotated as written (seconds allowed); always a timedelta once constructed.
    initial_delay: timedelta | float = timedelta(seconds=1)
    backoff_factor: float = 2.0
    max_delay: timedelta | float = timedelta(minutes=10)
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        set_field = object.__setattr__  # frozen: normalise the fields in place
        if not isinstance(self.max_attempts, int) or isinstance(self.max_attempts, bool):
            raise TypeError(f"RetryPolicy.max_attempts must be an int, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(
                f"RetryPolicy.max_attempts must be at least 1, got {self.max_attempts}"
            )
        set_field(
            self, "initial_delay", to_timedelta(self.initial_delay, "RetryPolicy.initial_delay")
        )
        set_field(self, "max_delay", to_timedelta(self.max_delay, "RetryPolicy.max_delay"))
        _check_number(self.backoff_factor, "backoff_factor")
        if self.backoff_factor < 1:
            raise ValueError("RetryPolicy.backoff_factor must be at least 1")
        _check_number(self.jitter, "jitter")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy.jitter must be between 0 and 1")
        retry_on: Any = self.retry_on
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
        elif isinstance(retry_on, list):
            retry_on = tuple(retry_on)
        if (
            not isinstance(retry_on, tuple)
            or not retry_on
            or not all(isinstance(c, type) and issubclass(c, BaseException) for c in retry_on)
        ):
            raise TypeError(
                "RetryPolicy.retry_on must be an exception class or a non-empty tuple of "
                f"them, got {self.retry_on!r}"
            )
        set_field(self, "retry_on", retry_on)

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether a failure of ``attempt`` (1-based) deserves another attempt."""
        return attempt < self.max_attempts and isinstance(error, self.retry_on)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed ``attempt`` (1-based) before the next one."""
        initial, cap = cast(timedelta, self.initial_delay), cast(timedelta, self.max_delay)
        base = initial.total_seconds() * self.backoff_factor ** (attempt - 1)
        base = min(base, cap.total_seconds())
        spread = base * self.jitter
        return timedelta(seconds=max(0.0, base + random.uniform(-spread, spread)))


def _check_number(value: Any, field: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"RetryPolicy.{field} must be a number, got {value!r}")
