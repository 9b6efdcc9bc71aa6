"""Time-ordered run ids (UUIDv7), so inserts land at the end of the primary key index."""

import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime


def uuid7() -> uuid.UUID:
    """Return a UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits."""
    native: Callable[[], uuid.UUID] | None = getattr(uuid, "uuid7", None)  # Python 3.14+
    if native is not None:
        return native()
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def uuid7_floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of ``moment``'s millisecond: ``id >= uuid7_floor(t)`` selects
    runs created at ``t`` or later through the primary key index."""
    millis = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(millis & ((1 << 48) - 1)) << 80)
