"""What a system's drain cost PostgreSQL in commits, statements and WAL, read from the server.

Commits are ``pg_stat_database.xact_commit`` of the system's own database, so each system
is counted apart (read-only transactions count too: the benchmark's own polls for
"done?", about 20 a second, are in it). A backend reports its counts when it goes idle,
at most once a second, so the reading after a drain waits for that. WAL is the server's
insert position; the drain begins with a CHECKPOINT, so every system pays the same full
page images. Statements are ``pg_stat_statements``' calls in the system's database (the
server preloads it, ``postgres.py``), BEGIN, COMMIT and SAVEPOINT included, as each is a
round trip; they are counted as each statement ends, with no flush to wait for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

STATS_FLUSH = 1.5  # seconds: a backend's counts reach pg_stat_database within 1 s


@dataclass(frozen=True)
class Counters:
    commits: int
    wal_bytes: int
    statements: int


def read(url: str) -> Counters:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        commits, wal, statements = connection.execute(
            "SELECT xact_commit, pg_current_wal_lsn() - '0/0', "
            "(SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s WHERE s.dbid = d.datid) "
            "FROM pg_stat_database d WHERE datname = current_database()"
        ).fetchone()
    return Counters(int(commits), int(wal), int(statements))


def checkpoint(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CHECKPOINT")


def per_run(url: str, before: Counters, runs: int) -> dict[str, float]:
    time.sleep(STATS_FLUSH)
    after = read(url)
    return {
        "commits_per_run": (after.commits - before.commits) / runs,
        "wal_bytes_per_run": (after.wal_bytes - before.wal_bytes) / runs,
        "statements_per_run": (after.statements - before.statements) / runs,
    }
