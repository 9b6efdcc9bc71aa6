"""Metrics benchmark: the metrics view with 1,000,000 runs in PostgreSQL.

    .venv-3.13/bin/python bench/metrics.py [--runs 1000000] [--backlog 10000]

Loads the runs as bench/admin.py does, turns the oldest ``--backlog`` completed runs into
pending runs of a queue no worker takes, registers three live workers, VACUUM ANALYZE
(as autovacuum would), then prints the view's median time and query count, each query's
plan and time, and the time of what the view leaves out: counting every run by status.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.admin import LOAD_SQL, setup_django, timed  # noqa: E402
from bench.postgres import ThrowawayPostgres  # noqa: E402

BACKLOG_SQL = """
UPDATE django_durable_run SET status = 'pending', queue_name = 'backlog', started_at = NULL,
    finished_at = NULL
WHERE id IN (SELECT id FROM django_durable_run WHERE status = 'completed'
             ORDER BY id LIMIT {backlog})
"""
# The loaded runs finished minutes ago at the latest: give the newest completed ones a
# finished_at within the last minute, as a worker finishing ~17 runs a second would.
RECENT_SQL = """
UPDATE django_durable_run SET finished_at = now() - random() * interval '50 seconds'
WHERE id IN (SELECT id FROM django_durable_run WHERE status = 'completed'
             ORDER BY id DESC LIMIT {recent})
"""
WORKERS_SQL = """
INSERT INTO django_durable_worker (worker_id, hostname, pid, queues, jobs, concurrency,
    started_at, last_seen_at)
SELECT 'bench-' || i, 'bench', i, '["default", "reports"]', '[]', 8, now(), now()
FROM generate_series(1, 3) AS i
"""
# What durable_runs would cost if it counted finished runs too, and the cheapest such
# count (by status alone, which the (status, finished_at) index could answer by itself).
LEFT_OUT = {
    "left out: every run by status, queue": (
        "SELECT status, queue_name, COUNT(*) FROM django_durable_run GROUP BY status, queue_name"
    ),
    "left out: every run by status": (
        "SELECT status, COUNT(*) FROM django_durable_run GROUP BY status"
    ),
}


def median_ms(action, repeat: int) -> float:
    action()  # warm the plan and the cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--recent", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--port", type=int, default=55495)
    options = parser.parse_args()

    server = ThrowawayPostgres(port=options.port)
    server.start()
    try:
        setup_django(server.url)
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from django_durable.metrics import collect

        started = time.perf_counter()
        server.psql(LOAD_SQL.format(runs=options.runs))
        server.psql(BACKLOG_SQL.format(backlog=options.backlog))
        server.psql(RECENT_SQL.format(recent=options.recent))
        server.psql(WORKERS_SQL)
        server.psql("VACUUM ANALYZE")
        print(
            f"loaded {options.runs:,} runs ({options.backlog:,} pending in 'backlog', "
            f"{options.recent:,} finished in the last minute) in "
            f"{time.perf_counter() - started:.1f} s"
        )

        client = Client()
        client.force_login(User.objects.create_superuser("bench", password="bench"))
        view_ms, view_queries = timed(client, "/durable/metrics", options.repeat)
        collect_ms = median_ms(lambda: collect("default"), options.repeat)
        with CaptureQueriesContext(connection) as captured:
            collect("default")
        print(f"\n{'':<36} {'median ms':>10} {'queries':>8}")
        print(f"{'view, as a logged-in superuser':<36} {view_ms:>10.1f} {view_queries:>8}")
        print(f"{'collect() alone':<36} {collect_ms:>10.1f} {len(captured):>8}")
        with connection.cursor() as cursor:
            for label, sql in LEFT_OUT.items():

                def count(sql: str = sql) -> None:
                    cursor.execute(sql)
                    cursor.fetchall()

                print(f"{label:<36} {median_ms(count, options.repeat):>10.1f} {1:>8}")
            left_out = [{"sql": sql} for sql in LEFT_OUT.values()]
            for query in [*captured.captured_queries[1:], *left_out]:
                cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {query['sql']}")
                plan = [row[0] for row in cursor.fetchall()]
                print(f"\n{query['sql'][:160]}")
                print("\n".join(f"    {line}" for line in plan))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
