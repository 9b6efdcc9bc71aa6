"""What a PostgreSQL server spends a benchmark phase on: wait events, WAL, vacuum, CPU.

``PhaseSampler(url)`` polls ``pg_stat_activity`` every 20 ms from a connection of its
own while a phase runs, and reads the server's WAL and checkpoint counters and the
machine's CPU time (``/proc/stat``) at its start and end, so two phases can be compared:
where active backends waited (``IO:WALSync``, ``LWLock:WALWrite``, a lock, or on the CPU),
how much WAL was written and flushed, how often autovacuum was running, and how busy the
CPUs were.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

ACTIVE = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), backend_type
FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid()
"""
VACUUMING = "SELECT count(*) FROM pg_stat_progress_vacuum"
COUNTERS = """
SELECT w.wal_bytes, w.wal_write, w.wal_sync, b.checkpoints_timed + b.checkpoints_req
FROM pg_stat_wal w, pg_stat_bgwriter b
"""


def _cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class PhaseSampler:
    def __init__(self, url: str, interval: float = 0.02) -> None:
        self.url = url
        self.interval = interval
        self.waits: Counter[str] = Counter()
        self.samples = 0
        self.vacuuming = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PhaseSampler:
        self._connection = psycopg.connect(self.url, autocommit=True)
        self._before = self._counters()
        self._cpu_before = _cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.counters = [
            after - before for after, before in zip(self._counters(), self._before, strict=True)
        ]
        busy, total = (
            after - before for after, before in zip(_cpu(), self._cpu_before, strict=True)
        )
        self.cpu_busy = busy / total if total else 0.0
        self._connection.close()

    def _counters(self) -> tuple[Any, ...]:
        row = self._connection.execute(COUNTERS).fetchone()
        assert row is not None
        return tuple(row)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            rows = self._connection.execute(ACTIVE).fetchall()
            self.samples += 1
            for wait, backend in rows:
                self.waits[f"{backend} {wait}"] += 1
            (vacuums,) = self._connection.execute(VACUUMING).fetchone() or (0,)
            self.vacuuming += bool(vacuums)

    def report(self, name: str) -> str:
        wal_bytes, wal_write, wal_sync, checkpoints = self.counters
        top = ", ".join(
            f"{wait} {count / self.samples:.2f}" for wait, count in self.waits.most_common(6)
        )
        return (
            f"{name}: CPU busy {self.cpu_busy:.0%}; WAL {wal_bytes / 2**20:,.0f} MiB, "
            f"{wal_write:,} writes, {wal_sync:,} syncs, {checkpoints} checkpoints; "
            f"autovacuum running in {self.vacuuming / max(self.samples, 1):.0%} of samples; "
            f"active backends per sample by wait: {top}"
        )
