"""The sweeps as a worker's housekeeping: what other workers left behind.

Every worker sweeps, at most once per poll interval: overdue runs are failed, runs whose
worker stopped heartbeating are requeued (or failed, out of recoveries), due waiting runs
become pending. Once a minute it also reports pending runs of jobs it does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from . import signals
from .conf import durable_settings
from .signals import send_run_signal
from .storage.base import Storage

logger = logging.getLogger("django_durable")

# Runs each sweep handles at most, per kind.
SWEEP_BATCH = 100
# How often to report pending runs of jobs this worker does not know (rolling deploys).
UNKNOWN_JOBS_REPORT_INTERVAL = 60.0


class Sweeper:
    def __init__(self, worker_id: str, storage: Storage, jobs: Collection[str]) -> None:
        self.worker_id = worker_id
        self.storage = storage
        self.jobs = jobs
        self.next_sweep = self.next_report = 0.0

    def sweep_if_due(self, now: float, interval: float) -> int:
        """Sweep if ``interval`` seconds passed since the last; how many runs became runnable."""
        if now >= self.next_report:
            self.report_unknown_jobs()
            self.next_report = now + UNKNOWN_JOBS_REPORT_INTERVAL
        if now < self.next_sweep:
            return 0
        self.next_sweep = now + interval
        return self.sweep()

    def sweep(self) -> int:
        """Fail overdue runs, recover stale leases, promote due runs; return how many runs
        became runnable."""
        # Overdue runs first: a stuck worker's overdue run is failed, not requeued only to
        # time out again on its next claim.
        for run_id in self.storage.fail_overdue(limit=SWEEP_BATCH):
            logger.error("worker=%s run=%s event=failed_deadline_passed", self.worker_id, run_id)
            send_run_signal(signals.run_failed, run_id, self.storage)
        swept = self.storage.recover_stale(
            max_recoveries=durable_settings.MAX_RECOVERIES, limit=SWEEP_BATCH
        )
        for run_id in swept.requeued:
            logger.warning("worker=%s run=%s event=recovered_stale_lease", self.worker_id, run_id)
        for run_id in swept.failed:
            logger.error(
                "worker=%s run=%s event=failed_too_many_recoveries", self.worker_id, run_id
            )
            send_run_signal(signals.run_failed, run_id, self.storage)
        for run_id in swept.cancelled:
            logger.info("worker=%s run=%s event=cancelled_stale_lease", self.worker_id, run_id)
            send_run_signal(signals.run_cancelled, run_id, self.storage)
        return len(swept.requeued) + self.storage.promote_due(limit=SWEEP_BATCH)

    def report_unknown_jobs(self) -> None:
        for name, count in self.storage.unclaimable_job_names(self.jobs).items():
            logger.warning(
                "worker=%s job=%s pending=%s event=job_not_registered "
                'hint="no worker knows this job: deploy the code that defines it here, or if '
                "it is deployed, have it imported at startup (an installed app's jobs.py is "
                "autodiscovered; a job in another module, such as billing/workflows.py, is "
                'not unless that jobs.py or AppConfig.ready() imports it)"',
                self.worker_id,
                name,
                count,
            )
