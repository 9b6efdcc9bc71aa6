"""django-tasks with django-tasks-db: the ORM backend of Django's tasks framework, drained
by its ``db_worker`` command (one task at a time per process, polling when idle)."""

from __future__ import annotations

import os
from importlib.metadata import version
from typing import Any

from bench.workers import WorkerGroup


class DjangoTasks:
    name = "django-tasks-db"
    step_counts = (1,)
    bulk_note = "many enqueue() calls in one transaction (no bulk API)"

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.url = self.pickup_url = options["url"]
        self.version = (
            f"django-tasks {version('django-tasks')}, django-tasks-db {version('django-tasks-db')}"
        )
        # db_worker runs one task at a time: the budget's threads cannot be used, so it
        # gets as many processes as django-durable has (more would only thrash 2 cores).
        self.layout = f"{options['processes']} db_worker processes (one task at a time each)"
        os.environ.update(
            DATABASE_URL=self.url, DJANGO_SETTINGS_MODULE="bench.peers.django_tasks_settings"
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)

    def workers(self) -> WorkerGroup:
        return WorkerGroup(
            ["-m", "django", "db_worker", "--no-startup-delay", "--queue-name", "default"],
            self.options["processes"],
            {
                "DATABASE_URL": self.url,
                "DJANGO_SETTINGS_MODULE": "bench.peers.django_tasks_settings",
                "BENCH_PICKUP_URL": self.pickup_url,
            },
            self.options["log_dir"],
            "django-tasks",
        )

    def enqueue_each(self, count: int) -> None:
        from bench.peers.django_tasks_jobs import one_step

        for _ in range(count):
            one_step.enqueue()

    def enqueue_bulk(self, count: int, steps: int) -> None:
        from django.db import transaction

        from bench.peers.django_tasks_jobs import one_step

        with transaction.atomic():
            for _ in range(count):
                one_step.enqueue()

    def enqueue_pickup(self, key: str) -> None:
        from bench.peers.django_tasks_jobs import pickup

        pickup.enqueue(key)

    def completed(self) -> int:
        from django_tasks_db.models import DBTaskResult

        return DBTaskResult.objects.successful().count()

    def reset(self) -> None:
        from django.db import connection
        from django_tasks_db.models import DBTaskResult

        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {DBTaskResult._meta.db_table}")


def make_system(options: dict[str, Any]) -> DjangoTasks:
    return DjangoTasks(options)
