"""The worker loop: claim runs for free slots, execute them on threads, keep leases alive.

The main thread claims, heartbeats and sweeps; each slot thread executes one run at a
time on its own database connection.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Sequence

from django.db import DatabaseError, close_old_connections, connections

from .conf import durable_settings
from .jobs import Job, registered_jobs
from .runner import execute_run
from .storage import get_storage
from .storage.base import ClaimedRun, Storage

logger = logging.getLogger("django_durable")

# How often to report pending runs of jobs this worker does not know (rolling deploys).
UNKNOWN_JOBS_REPORT_INTERVAL = 60.0
SWEEP_BATCH = 100


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        *,
        queues: Sequence[str] | None = ("default",),
        concurrency: int = 1,
        burst: bool = False,
        worker_id: str | None = None,
        poll_interval: float | None = None,
        jobs: dict[str, Job] | None = None,
        storage: Storage | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queues = list(queues) if queues is not None else None
        self.concurrency = concurrency
        self.burst = burst
        self.worker_id = worker_id or default_worker_id()
        self.poll_interval = (
            durable_settings.POLL_INTERVAL if poll_interval is None else poll_interval
        )
        self.jobs = registered_jobs() if jobs is None else jobs
        self.storage = storage or get_storage()
        self.processed = 0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._inbox: queue.Queue[ClaimedRun | None] = queue.Queue()
        # Runs claimed and not yet finished or given up; only these are heartbeated.
        self._active: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Stop claiming; runs in flight finish, then :meth:`run` returns."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        logger.info(
            "worker=%s event=started queues=%s concurrency=%s jobs=%s",
            self.worker_id,
            ",".join(self.queues or ["*"]),
            self.concurrency,
            len(self.jobs),
        )
        slots = [
            threading.Thread(target=self._slot, name=f"durable-slot-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in slots:
            thread.start()
        try:
            self._loop()
        finally:
            for _ in slots:
                self._inbox.put(None)
            for thread in slots:
                thread.join()
            connections.close_all()
            logger.info("worker=%s event=stopped processed=%s", self.worker_id, self.processed)

    # -- main thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        next_heartbeat = next_report = next_sweep = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_heartbeat:
                    with self._lock:
                        active = list(self._active)
                    self.storage.heartbeat(self.worker_id, active)
                    next_heartbeat = now + durable_settings.heartbeat_interval
                if now >= next_report:
                    self._report_unknown_jobs()
                    next_report = now + UNKNOWN_JOBS_REPORT_INTERVAL
                # Sweeping is housekeeping, kept off the claim path of a busy worker.
                if now >= next_sweep:
                    self._sweep()
                    next_sweep = now + self.poll_interval
                claimed = self._claim()
            except DatabaseError as error:
                logger.warning("worker=%s event=database_error error=%s", self.worker_id, error)
                close_old_connections()
                self._stopping.wait(self.poll_interval)
                continue
            with self._lock:
                busy = len(self._active)
            if claimed and busy < self.concurrency:
                continue  # more slots free: claim again at once
            if self.burst and not claimed and busy == 0:
                return
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _sweep(self) -> None:
        swept = self.storage.recover_stale(
            max_recoveries=durable_settings.MAX_RECOVERIES, limit=SWEEP_BATCH
        )
        for run_id in swept.requeued:
            logger.warning("worker=%s run=%s event=recovered_stale_lease", self.worker_id, run_id)
        for run_id in swept.failed:
            logger.error(
                "worker=%s run=%s event=failed_too_many_recoveries", self.worker_id, run_id
            )
        self.storage.promote_due(limit=SWEEP_BATCH)

    def _claim(self) -> list[ClaimedRun]:
        with self._lock:
            free = self.concurrency - len(self._active)
        if free <= 0:
            return []
        claimed = self.storage.claim(
            owner=self.worker_id, job_names=self.jobs, queues=self.queues, limit=free
        )
        with self._lock:
            self._active.update(item.run.id for item in claimed)
        for item in claimed:
            self._inbox.put(item)
        return claimed

    def _report_unknown_jobs(self) -> None:
        for name, count in self.storage.unclaimable_job_names(self.jobs).items():
            logger.warning(
                "worker=%s job=%s pending=%s event=job_not_registered "
                "hint=no worker knows this job; deploy code that defines it",
                self.worker_id,
                name,
                count,
            )

    # -- slot threads ----------------------------------------------------------------------

    def _slot(self) -> None:
        try:
            while (claimed := self._inbox.get()) is not None:
                try:
                    execute_run(self.storage, claimed, self.jobs[claimed.run.job_name])
                except Exception:
                    # No longer heartbeated, the lease expires and another worker recovers
                    # the run. That counts a recovery, so a run that always breaks its
                    # worker ends failed instead of looping.
                    logger.exception(
                        "worker=%s run=%s event=execution_error", self.worker_id, claimed.run.id
                    )
                    close_old_connections()
                finally:
                    with self._lock:
                        self._active.discard(claimed.run.id)
                        self.processed += 1
                    self._wake.set()
        finally:
            connections.close_all()
