"""Schedules as a worker's housekeeping: store the code's at start, then start due ticks.

Every worker does it (there is no leader), about once a second, by the database clock;
``storage/schedules.py`` makes sure each tick starts one run whoever gets there first.
A worker produces ticks only for jobs it knows, so a schedule added in a rolling deploy
fires once a worker that has its job is running.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from . import signals
from .conf import durable_settings
from .jobs import Job
from .schedules import ScheduleSpec
from .storage import get_storage
from .storage.schedules import due_schedules, produce_ticks, sync_schedules

logger = logging.getLogger("django_durable")

# Seconds between two looks at the schedules (cron's finest field is the second).
INTERVAL = 1.0


class Scheduler:
    def __init__(
        self, worker_id: str, jobs: Mapping[str, Job], schedules: Mapping[str, ScheduleSpec]
    ) -> None:
        self.worker_id = worker_id
        self.jobs = jobs
        self.schedules = schedules
        self.synced = False
        self.next_at = 0.0

    def produce_if_due(self, now: float) -> None:
        if now < self.next_at:
            return
        self.next_at = now + INTERVAL
        alias = durable_settings.DATABASE
        if not self.synced:  # once per worker, retried by the loop if the database fails
            created, updated, removed = sync_schedules(alias, self.schedules)
            self.synced = True
            logger.info(
                "worker=%s event=schedules_synced declared=%d created=%d updated=%d removed=%d",
                self.worker_id,
                len(self.schedules),
                created,
                updated,
                removed,
            )
        db_now = get_storage().now()
        for schedule_id in due_schedules(alias, self.jobs, db_now):
            produced = produce_ticks(alias, schedule_id, now=db_now, jobs=self.jobs)
            if produced.problem is not None:
                logger.error(
                    "worker=%s schedule=%s event=schedule_broken error=%s",
                    self.worker_id,
                    schedule_id,
                    produced.problem,
                )
            for at, run_id in produced.started:
                logger.info(
                    "worker=%s schedule=%s run=%s event=tick_started scheduled_at=%s",
                    self.worker_id,
                    schedule_id,
                    run_id,
                    at.isoformat(),
                )
                signals.tick_started.send_robust(
                    sender=Scheduler, schedule=schedule_id, scheduled_at=at, run=run_id
                )
            for at, reason in produced.skipped:
                logger.info(
                    'worker=%s schedule=%s event=tick_skipped scheduled_at=%s reason="%s"',
                    self.worker_id,
                    schedule_id,
                    at.isoformat(),
                    reason,
                )
                signals.tick_skipped.send_robust(
                    sender=Scheduler, schedule=schedule_id, scheduled_at=at, reason=reason
                )
