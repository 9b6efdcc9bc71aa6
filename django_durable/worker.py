"""The worker loop: claim runs for free slots, execute them on threads, keep leases alive.

The main thread claims, heartbeats, sweeps and does housekeeping (schedule ticks,
pruning); each slot thread executes one run at a time on its own database connection.
On stop, claiming ends, running jobs are released at their next step boundary, and
whatever still runs when the grace period ends is released from the main thread (its
later writes are fenced out).
"""

from __future__ import annotations

import functools
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import DatabaseError, close_old_connections, connections

from .async_context import Database
from .atomic import AtomicLeases
from .conf import durable_settings
from .db_threads import reset_broken_connections
from .event_loop import EventLoop
from .exceptions import LeaseLost, RunCancelled, RunTimedOut, WorkerStopping
from .jobs import Job, job_timeouts, registered_jobs
from .notify import start_listening
from .presence import HealthFile, Presence, default_worker_id, worker_info
from .pruner import Pruner
from .runner import aexecute_run, execute_run
from .scheduler import Scheduler
from .schedules import ScheduleSpec, registered_schedules
from .storage import get_storage
from .storage.base import Checkpoint, ClaimedRun, Lease, Storage
from .sweeper import Sweeper

logger = logging.getLogger("django_durable")

MAX_BACKOFF = 10.0
# Runs of async def jobs one worker process executes at a time on its event loop.
DEFAULT_ASYNC_CONCURRENCY = 100


@dataclass(slots=True)
class _Active:
    lease: Lease
    # Monotonic time the lease was last known good: its claim, or a heartbeat sent later.
    renewed_at: float
    # Monotonic time by which a job with a timeout must be done (checked before each
    # operation; derived from the database clock at the claim).
    deadline: float | None = None
    # A heartbeat reported that someone asked to cancel the run.
    cancel_requested: bool = False
    # A heartbeat found the lease no longer this worker's (taken over while this worker
    # was frozen or cut off): the run is abandoned at its next operation.
    lost: bool = False
    # The execution is writing its end (complete, fail, release, ...): a lease the
    # heartbeat no longer finds was given up by that write, or its fence will say so.
    ending: bool = False
    # Executed on the event loop (an async def job), not on a thread slot.
    on_loop: bool = False


class Worker:
    def __init__(
        self,
        *,
        queues: Sequence[str] | None = ("default",),
        concurrency: int = 1,
        async_concurrency: int = DEFAULT_ASYNC_CONCURRENCY,
        burst: bool = False,
        max_runs: int | None = None,
        grace: float = 30.0,
        worker_id: str | None = None,
        poll_interval: float | None = None,
        jobs: dict[str, Job] | None = None,
        schedules: Mapping[str, ScheduleSpec] | None = None,
        storage: Storage | None = None,
        health_file: str | Path | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if async_concurrency < 0:
            raise ValueError("async_concurrency must be 0 or more")
        self.queues = list(queues) if queues is not None else None
        self.concurrency = concurrency
        self.async_concurrency = async_concurrency
        self.burst = burst
        self.max_runs = max_runs
        self.grace = grace
        self.worker_id = worker_id or default_worker_id()
        self.poll_interval = (
            durable_settings.POLL_INTERVAL if poll_interval is None else poll_interval
        )
        self.jobs = registered_jobs() if jobs is None else jobs
        # Async jobs go to the event loop, unless it has no slots: then thread slots run
        # them too, each on a loop of its own.
        self._loop_jobs = {
            name: job for name, job in self.jobs.items() if job.is_async and async_concurrency
        }
        self._thread_jobs = {
            name: job for name, job in self.jobs.items() if name not in self._loop_jobs
        }
        self._event_loop = EventLoop(self._execute_on_loop) if self._loop_jobs else None
        self.storage = storage or get_storage()
        # Touched after each loop that reached the database, for a liveness probe.
        self._health = None if health_file is None else HealthFile(health_file, self.worker_id)
        self._timeouts = job_timeouts(self.jobs)
        self.processed = 0
        self._claimed_total = 0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._inbox: queue.Queue[ClaimedRun | None] = queue.Queue()
        # Runs claimed and not yet finished or given up; only these are heartbeated.
        self._active: dict[uuid.UUID, _Active] = {}
        self._lock = threading.Lock()
        info = worker_info(self.worker_id, self.queues, list(self.jobs), concurrency)
        self._presence = Presence(self.storage, info)
        self._sweeper = Sweeper(self.worker_id, self.storage, self.jobs)
        self._pruner = Pruner(self.worker_id)
        self._scheduler = Scheduler(
            self.worker_id,
            self.jobs,
            registered_schedules() if schedules is None else schedules,
        )
        self._atomic = AtomicLeases(
            holds_database=self.storage.transactions_hold_database,
            renewable=self._renewable,
            renewed=self._renewed,
        )

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop claiming; running jobs are released at their next step boundary."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        """Look for work now (new runs were announced)."""
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
        if self._event_loop is not None:
            self._event_loop.start()
        start_listening(self.worker_id, self.queues, self.poll_interval, self.wake, self._stopping)
        try:
            self._loop()
            self._drain()
        finally:
            for _ in slots:
                self._inbox.put(None)
            if self._event_loop is not None:
                self._event_loop.stop()
            self._presence.stopped()
            connections.close_all()
        logger.info("worker=%s event=stopped processed=%s", self.worker_id, self.processed)

    # -- main thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        """Claim and execute until stopped, idle in burst mode, or --max-runs reached."""
        failures = 0
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                # Claim first: a run waiting in the queue should not wait for housekeeping.
                claimed = self._claim()
                self._heartbeat_if_due()
                self._presence.seen_if_due(now)
                runnable = self._sweeper.sweep_if_due(now, self.poll_interval)
                self._scheduler.produce_if_due(now)
                self._pruner.prune_if_due(now)
            except Exception as error:
                # A database error, or a bug: either way the worker backs off and carries
                # on, so that nothing one row holds can make every worker exit.
                failures += 1
                delay = min(MAX_BACKOFF, self.poll_interval * 2**failures) * random.uniform(0.5, 1)
                if isinstance(error, DatabaseError):
                    logger.warning(
                        "worker=%s event=database_error error=%s retry_in=%.1f",
                        self.worker_id,
                        str(error).strip(),
                        delay,
                    )
                else:
                    logger.exception(
                        "worker=%s event=loop_error error=%s retry_in=%.1f",
                        self.worker_id,
                        error,
                        delay,
                    )
                close_old_connections()
                self._stopping.wait(delay)
                continue
            if failures:
                logger.info("worker=%s event=database_reconnected", self.worker_id)
                failures = 0
            if self._health is not None:
                self._health.touch()
            busy = self._busy()
            if self.max_runs is not None and self._claimed_total >= self.max_runs:
                if busy == 0:
                    return
            elif (claimed or runnable) and any(self._free()):
                continue  # slots still free and runs may be waiting: claim again at once
            elif self.burst and not claimed and busy == 0 and self._nothing_to_claim():
                return
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _nothing_to_claim(self) -> bool:
        """--burst exits on the database's word, not on one empty claim: a claim comes back
        empty while other workers hold the rows it would take, for one."""
        try:
            return not self.storage.has_claimable_runs(job_names=self.jobs, queues=self.queues)
        except DatabaseError as error:
            logger.warning("worker=%s event=database_error error=%s", self.worker_id, error)
            close_old_connections()
            return False  # ask again after the next claim

    def _drain(self) -> None:
        """After a stop: keep leases alive while jobs reach a step boundary, up to grace."""
        deadline = time.monotonic() + self.grace
        while self._busy() and time.monotonic() < deadline:
            try:
                self._heartbeat_if_due()
                self._presence.seen_if_due(time.monotonic())
            except DatabaseError as error:
                logger.warning("worker=%s event=database_error error=%s", self.worker_id, error)
                close_old_connections()
            self._wake.wait(0.05)
            self._wake.clear()
        with self._lock:
            stuck = [active.lease for active in self._active.values()]
            self._active.clear()
        for lease in stuck:
            try:
                self.storage.release(lease, Checkpoint())
                logger.warning(
                    "worker=%s run=%s event=released_after_grace grace=%s",
                    self.worker_id,
                    lease.run_id,
                    self.grace,
                )
            except (LeaseLost, DatabaseError) as error:
                logger.warning(
                    "worker=%s run=%s event=release_failed error=%s",
                    self.worker_id,
                    lease.run_id,
                    error,
                )

    def _busy(self) -> int:
        with self._lock:
            return len(self._active)

    def _free(self) -> tuple[int, int]:
        """Free thread slots and free event loop slots, each 0 when no job runs there."""
        with self._lock:
            on_loop = sum(active.on_loop for active in self._active.values())
            on_threads = len(self._active) - on_loop
        return (
            self.concurrency - on_threads if self._thread_jobs else 0,
            self.async_concurrency - on_loop if self._loop_jobs else 0,
        )

    def _heartbeat_if_due(self) -> None:
        # Runs inside atomic steps are left out: their row is locked by their own
        # transaction, which renews their lease itself.
        with self._atomic.heartbeat() as leave_out:
            if leave_out is not None:
                self._heartbeat(leave_out)

    def _heartbeat(self, leave_out: frozenset[uuid.UUID]) -> None:
        now = time.monotonic()
        interval = durable_settings.heartbeat_interval
        with self._lock:
            due = {
                run_id: active
                for run_id, active in self._active.items()
                if not active.lost
                and now - active.renewed_at >= interval
                and run_id not in leave_out
            }
        if not due:
            return
        # Renewal counts from before the statement is sent, so the worker's own view of
        # its lease never outlives the database's; and only for the leases the database
        # renewed: a run taken over meanwhile must not look fresh to its guard.
        beat = self.storage.heartbeat(self.worker_id, list(due))
        lost = []
        with self._lock:
            for run_id, active in due.items():
                if self._active.get(run_id) is not active:
                    continue  # finished (or claimed anew) while the heartbeat ran
                if run_id in beat.renewed:
                    active.renewed_at = now
                    active.cancel_requested = run_id in beat.cancel_requested
                elif not active.ending:
                    active.lost = True
                    lost.append(run_id)
        for run_id in lost:
            logger.warning("worker=%s run=%s event=lease_not_renewed", self.worker_id, run_id)

    def _renewable(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        with self._lock:
            return [other for other, a in self._active.items() if other != run_id and not a.lost]

    def _renewed(self, run_ids: Collection[uuid.UUID], at: float) -> None:
        """An atomic step's transaction renewed these leases at monotonic time ``at``."""
        with self._lock:
            for run_id in run_ids:
                active = self._active.get(run_id)
                if active is not None and not active.lost:
                    active.renewed_at = max(active.renewed_at, at)

    def _claim(self) -> list[ClaimedRun]:
        on_threads, on_loop = self._free()
        claimed = self._claim_for(self._thread_jobs, on_threads, on_loop=False)
        if self._event_loop is not None:
            claimed += self._claim_for(self._loop_jobs, on_loop, on_loop=True)
        return claimed

    def _claim_for(self, jobs: dict[str, Job], free: int, *, on_loop: bool) -> list[ClaimedRun]:
        if self.max_runs is not None:
            free = min(free, self.max_runs - self._claimed_total)
        if free <= 0:
            return []
        claimed_at = time.monotonic()
        claimed = self.storage.claim(
            owner=self.worker_id,
            job_names=jobs,
            queues=self.queues,
            limit=free,
            timeouts=self._timeouts,
        )
        with self._lock:
            for item in claimed:
                self._active[item.run.id] = _Active(
                    lease=item.lease,
                    renewed_at=claimed_at,
                    deadline=None if item.time_left is None else claimed_at + item.time_left,
                    on_loop=on_loop,
                )
        self._claimed_total += len(claimed)
        for item in claimed:
            if self._event_loop is not None and on_loop:
                self._event_loop.submit(item)
            else:
                self._inbox.put(item)
        return claimed

    # -- slot threads ----------------------------------------------------------------------

    def _guard(self, run_id: uuid.UUID) -> Callable[[], None]:
        """Checked before each operation a job executes, each step attempt and each flush."""
        stale_after = durable_settings.STALE_AFTER
        with self._lock:
            claimed = self._active.get(run_id)

        def before_operation() -> None:
            self._atomic.wait_for_database(run_id)
            with self._lock:
                active = self._active.get(run_id)
            # Not the entry this execution was claimed with: the run was given up, or
            # claimed anew (a new lease) while this execution was frozen.
            if active is None or active is not claimed:
                raise LeaseLost(f"run {run_id}: this worker no longer holds its lease")
            if active.lost:
                raise LeaseLost(f"run {run_id}: the database did not renew its lease")
            # Monotonic time, so a worker that was frozen (SIGSTOP, a paused VM) sees
            # how long it was gone before it starts anything.
            if time.monotonic() - active.renewed_at >= stale_after:
                raise LeaseLost(f"run {run_id}: no heartbeat succeeded for {stale_after}s")
            if active.cancel_requested:
                raise RunCancelled
            if active.deadline is not None and time.monotonic() >= active.deadline:
                raise RunTimedOut(f"run {run_id} passed its deadline")
            if self._stopping.is_set():
                raise WorkerStopping

        return before_operation

    def _ending(self, run_id: uuid.UUID, claimed: _Active | None) -> None:
        with self._lock:
            if self._active.get(run_id) is claimed and claimed is not None:
                claimed.ending = True

    def _hooks(self, claimed: ClaimedRun) -> tuple[_Active | None, dict[str, Any]]:
        """The entry ``claimed`` was claimed with, and the hooks its execution takes."""
        run_id = claimed.run.id
        with self._lock:
            active = self._active.get(run_id)
        return active, {
            "before_operation": self._guard(run_id),
            "before_end": functools.partial(self._ending, run_id, active),
            "atomic_leases": self._atomic,
        }

    def _executed(self, run_id: uuid.UUID, active: _Active | None) -> None:
        with self._lock:
            if self._active.get(run_id) is active:  # not a newer claim's entry
                del self._active[run_id]
            self.processed += 1
        self._wake.set()

    def _slot(self) -> None:
        try:
            while (claimed := self._inbox.get()) is not None:
                run_id = claimed.run.id
                active, hooks = self._hooks(claimed)
                try:
                    execute_run(self.storage, claimed, self.jobs[claimed.run.job_name], **hooks)
                except Exception:
                    # No longer heartbeated, the lease expires and another worker recovers
                    # the run. That counts a recovery, so a run that always breaks its
                    # worker ends failed instead of looping.
                    self._log_execution_error(run_id)
                    close_old_connections()
                finally:
                    reset_broken_connections()
                    self._executed(run_id, active)
        finally:
            connections.close_all()

    async def _execute_on_loop(self, claimed: ClaimedRun, database: Database) -> None:
        run_id = claimed.run.id
        active, hooks = self._hooks(claimed)
        try:
            job = self.jobs[claimed.run.job_name]
            await aexecute_run(self.storage, claimed, job, database=database, **hooks)
        except Exception:
            self._log_execution_error(run_id)  # as on a slot: the lease runs out
        finally:
            self._executed(run_id, active)

    def _log_execution_error(self, run_id: uuid.UUID) -> None:
        logger.exception("worker=%s run=%s event=execution_error", self.worker_id, run_id)
