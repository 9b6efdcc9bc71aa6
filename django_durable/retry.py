"""Retry policies: how many attempts, and how long to wait between them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    The delay before attempt ``n + 1`` is ``initial_delay * backoff_factor ** (n - 1)``,
    capped at ``max_delay``, then spread by up to ``jitter`` (a fraction) either way.
    """

    max_attempts: int = 3
    initial_delay: timedelta = timedelta(seconds=1)
    backoff_factor: float = 2.0
    max_delay: timedelta = timedelta(minutes=10)
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        if self.backoff_factor < 1:
            raise ValueError("RetryPolicy.backoff_factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy.jitter must be between 0 and 1")
        if isinstance(self.retry_on, type):
            object.__setattr__(self, "retry_on", (self.retry_on,))

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether a failure of ``attempt`` (1-based) deserves another attempt."""
        return attempt < self.max_attempts and isinstance(error, self.retry_on)

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed ``attempt`` (1-based) before the next one."""
        base = self.initial_delay.total_seconds() * self.backoff_factor ** (attempt - 1)
        base = min(base, self.max_delay.total_seconds())
        spread = base * self.jitter
        return timedelta(seconds=max(0.0, base + random.uniform(-spread, spread)))
