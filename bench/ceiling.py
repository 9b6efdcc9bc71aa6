"""The database's own limit: pgbench on the same server, no Python in the loop."""

from __future__ import annotations

from bench.postgres import ThrowawayPostgres

INSERT = "INSERT INTO bench_insert (v) VALUES (1);\n"

# One claim-and-update transaction, the shape of every job system's claim.
CLAIM = """BEGIN;
UPDATE bench_queue SET status = 'done'
 WHERE id = (SELECT id FROM bench_queue WHERE status = 'pending'
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED);
COMMIT;
"""

SETUP = """
CREATE TABLE bench_insert (id bigserial PRIMARY KEY, v int NOT NULL);
CREATE TABLE bench_queue (id bigserial PRIMARY KEY, status text NOT NULL);
CREATE INDEX bench_queue_pending ON bench_queue (id) WHERE status = 'pending';
"""


def measure(server: ThrowawayPostgres, clients: list[int], seconds: int) -> dict:
    server.psql("CREATE DATABASE ceiling", database="postgres")
    database = "ceiling"
    server.psql(SETUP, database=database)
    result: dict[str, dict[str, float]] = {"insert": {}, "claim": {}}
    for count in clients:
        result["insert"][str(count)] = server.pgbench(
            INSERT, clients=count, seconds=seconds, database=database
        )
        # Enough pending rows that no client ever runs dry, vacuumed like a live queue.
        server.psql("TRUNCATE bench_queue", database=database)
        server.psql(
            "INSERT INTO bench_queue (status) SELECT 'pending' FROM generate_series(1, 300000)",
            database=database,
        )
        server.psql("VACUUM ANALYZE bench_queue", database=database)
        result["claim"][str(count)] = server.pgbench(
            CLAIM, clients=count, seconds=seconds, database=database
        )
        print(
            f"   pgbench {count} clients: INSERT {result['insert'][str(count)]:,.0f} tps, "
            f"claim {result['claim'][str(count)]:,.0f} tps",
            flush=True,
        )
    return result
