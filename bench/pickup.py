"""Pickup timestamps: every system's pickup job records when its body began.

The job bodies call ``record(key)`` first thing; the driver enqueues with a fresh key,
notes the time its transaction committed, and waits for the key to appear here. The
write goes through a connection of its own, outside the system under test, so every
system pays the same and the timestamp is taken before it.
"""

from __future__ import annotations

import os
import threading
import time

import psycopg

TABLE = "CREATE TABLE IF NOT EXISTS bench_pickup (key text PRIMARY KEY, at double precision)"
_local = threading.local()


def _connection() -> psycopg.Connection:
    if getattr(_local, "connection", None) is None:
        _local.connection = psycopg.connect(os.environ["BENCH_PICKUP_URL"], autocommit=True)
    return _local.connection


def record(key: str) -> None:
    at = time.time()
    _connection().execute("INSERT INTO bench_pickup (key, at) VALUES (%s, %s)", (key, at))


class PickupWatch:
    """The driver's side: create the table, then wait for keys."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)
        self.connection.execute(TABLE)
        self.connection.execute("TRUNCATE bench_pickup")

    def wait(self, key: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.connection.execute(
                "SELECT at FROM bench_pickup WHERE key = %s", (key,)
            ).fetchone()
            if row:
                return float(row[0])
            time.sleep(0.001)
        raise TimeoutError(f"pickup job {key} did not start within {timeout} s")

    def close(self) -> None:
        self.connection.close()
