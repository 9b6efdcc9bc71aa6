"""Procrastinate through its Django integration, drained by
``manage.py procrastinate worker`` (LISTEN/NOTIFY, concurrent jobs per process)."""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

from bench.workers import WorkerGroup

SETTINGS = "bench.peers.procrastinate_settings"


class Procrastinate:
    name = "procrastinate"
    step_counts = (1,)
    bulk_note = "batch_defer(), its bulk API (one INSERT)"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.url = self.pickup_url = options["url"]
        self.version = f"procrastinate {version('procrastinate')}"
        self.layout = (
            f"{options['processes']} worker processes x --concurrency {options['threads']}"
        )
        os.environ.update(DATABASE_URL=self.url, DJANGO_SETTINGS_MODULE=SETTINGS)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)

    def workers(self) -> WorkerGroup:
        return WorkerGroup(
            [
                "-m",
                "django",
                "procrastinate",
                "worker",
                "--concurrency",
                str(self.options["threads"]),
            ],
            self.options["processes"],
            {
                "DATABASE_URL": self.url,
                "DJANGO_SETTINGS_MODULE": SETTINGS,
                "BENCH_PICKUP_URL": self.pickup_url,
            },
            self.options["log_dir"],
            "procrastinate",
        )

    def enqueue_each(self, count: int) -> None:
        from bench.peers.procrastinate_jobs import one_step

        for _ in range(count):
            one_step.defer()

    def enqueue_bulk(self, count: int, steps: int) -> None:
        from bench.peers.procrastinate_jobs import one_step

        one_step.batch_defer(*({} for _ in range(count)))

    def enqueue_pickup(self, key: str) -> None:
        from bench.peers.procrastinate_jobs import pickup

        pickup.defer(key=key)

    def completed(self) -> int:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
            return int(cursor.fetchone()[0])

    def reset(self) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE procrastinate_jobs CASCADE")


def make_system(options: dict[str, Any]) -> Procrastinate:
    return Procrastinate(options)
