"""DBOS Transact: workflows of 1 and 10 steps on a DBOS queue, served by processes that
launch DBOS (bench/peers/dbos_app.py), enqueued with DBOSClient."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient

from bench.workers import ROOT, WorkerGroup

WORKFLOWS = {1: "one_step", 10: "ten_steps"}


class Dbos:
    name = "dbos"
    step_counts = (1, 10)
    bulk_note = "DBOSClient.enqueue_in_transaction() calls in one transaction"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.url = self.pickup_url = options["url"]
        self.version = f"dbos {version('dbos')}"
        self.layout = (
            f"{options['processes']} processes x {options['threads']} executor threads "
            "(max_executor_threads); the queue with DBOS's defaults (no worker_concurrency, "
            "polled every second)"
        )
        self.env = {
            "DATABASE_URL": self.url,
            "BENCH_THREADS": str(options["threads"]),
            "BENCH_DBOS_CONCURRENCY": os.environ.get("BENCH_DBOS_CONCURRENCY", ""),
            "BENCH_DBOS_POLL": os.environ.get("BENCH_DBOS_POLL", "1.0"),
        }
        # DBOS creates its system tables and the queue when it launches.
        subprocess.run(
            [sys.executable, "-m", "bench.peers.dbos_app", "migrate"],
            check=True,
            cwd=ROOT,
            env={**os.environ, **self.env},
            capture_output=True,
        )
        sa_url = self.url.replace("postgres://", "postgresql+psycopg://", 1)
        self.engine = sa.create_engine(sa_url)
        self.client = DBOSClient(system_database_engine=self.engine)

    def workers(self) -> WorkerGroup:
        return WorkerGroup(
            ["-m", "bench.peers.dbos_app"],
            self.options["processes"],
            self.env | {"BENCH_PICKUP_URL": self.pickup_url},
            self.options["log_dir"],
            "dbos",
        )

    def _options(self, workflow: str) -> dict:
        return {"queue_name": "bench", "workflow_name": workflow}

    def enqueue_each(self, count: int) -> None:
        for _ in range(count):
            self.client.enqueue(self._options(WORKFLOWS[1]))  # type: ignore[arg-type]

    def enqueue_bulk(self, count: int, steps: int) -> None:
        options = self._options(WORKFLOWS[steps])
        with self.engine.begin() as connection:
            for _ in range(count):
                self.client.enqueue_in_transaction(connection, options)  # type: ignore[arg-type]

    def enqueue_pickup(self, key: str) -> None:
        self.client.enqueue(self._options("pickup"), key)  # type: ignore[arg-type]

    def completed(self) -> int:
        with self.engine.connect() as connection:
            return int(
                connection.execute(
                    sa.text("SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'")
                ).scalar_one()
            )

    def reset(self) -> None:
        with self.engine.begin() as connection:
            connection.execute(sa.text("TRUNCATE dbos.workflow_status CASCADE"))


def make_system(options: dict[str, Any]) -> Dbos:
    return Dbos(options)
