"""Time-ordered run ids (UUIDv7), so inserts land at the end of the primary key index."""

import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

_last_tick = 0
_tick_lock = threading.Lock()


def uuid7() -> uuid.UUID:
    """Return a UUIDv7 (RFC 9562): 48-bit Unix milliseconds, 12 bits of sub-millisecond
    time, then random bits; strictly increasing within a process.

    Runs enqueued in the same millisecond share a ``run_after`` on SQLite (its clock has
    millisecond precision), so the claim falls back to the id: it must keep their order.
    """
    native: Callable[[], uuid.UUID] | None = getattr(uuid, "uuid7", None)  # Python 3.14+
    if native is not None:
        return native()  # monotonic within a process too
    global _last_tick
    millis, nanos = divmod(time.time_ns(), 1_000_000)
    # RFC 9562 method 3: the leftmost random bits carry the time's fraction of a millisecond.
    tick = millis << 12 | nanos * 4096 // 1_000_000
    with _tick_lock:
        tick = max(tick, _last_tick + 1)
        _last_tick = tick
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (tick & ((1 << 60) - 1)) >> 12 << 80 | 0x7 << 76 | (tick & 0xFFF) << 64
    value |= 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def uuid7_floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of ``moment``'s millisecond: ``id >= uuid7_floor(t)`` selects
    runs created at ``t`` or later through the primary key index."""
    millis = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(millis & ((1 << 48) - 1)) << 80)
