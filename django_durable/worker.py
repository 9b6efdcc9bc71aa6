"""The worker loop: claim runs for free slots, execute them on threads or the event loop.

The main thread claims, heartbeats, sweeps and does housekeeping (schedule ticks,
pruning); each slot thread executes one run at a time on its own database connection,
the event loop many runs of async jobs (the leases of both are ``HeldRuns``). On stop,
claiming ends, running jobs are released at their next step boundary, and whatever still
runs when the grace period ends is released from the main thread (its later writes are
fenced out).
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.db import DatabaseError, close_old_connections, connections

from .async_context import Database
from .completions import Completions
from .conf import durable_settings
from .db_threads import reset_broken_connections
from .event_loop import EventLoop
from .exceptions import LeaseLost, StorageError
from .held_runs import Held, HeldRuns
from .jobs import Job, job_timeouts, registered_jobs
from .notify import start_listening
from .presence import HealthFile, Presence, default_worker_id, worker_info
from .pruner import Pruner
from .runner import aexecute_run, execute_run
from .scheduler import Scheduler
from .schedules import ScheduleSpec, registered_schedules
from .storage import get_storage
from .storage.base import ClaimedRun, Storage
from .sweeper import Sweeper

logger = logging.getLogger("django_durable")

MAX_BACKOFF = 10.0
# Runs claimed for thread slots and for the event loop.
Claimed = tuple[list[ClaimedRun], list[ClaimedRun]]
# Runs of async def jobs one worker process executes at a time on its event loop.
DEFAULT_ASYNC_CONCURRENCY = 100


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
        # Executions still running when the grace period ended: their runs were given up,
        # their threads cannot be stopped.
        self.left_running = 0
        # Touched after each loop that reached the database, for a liveness probe.
        self._health = None if health_file is None else HealthFile(health_file, self.worker_id)
        self._timeouts = job_timeouts(self.jobs)
        self._claimed_total = 0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._inbox: queue.Queue[ClaimedRun | None] = queue.Queue()
        # Runs claimed and not yet finished or given up; only these are heartbeated.
        self._held = HeldRuns(self.worker_id, self.storage, self._stopping)
        # Slot threads hand their completions to the main thread, except where a write
        # transaction holds the whole database (SQLite): there each writes its own.
        self._completions = (
            None
            if self.storage.transactions_hold_database
            else Completions(self.storage, self.wake)
        )
        self._slot_storage = (
            self.storage if self._completions is None else self._completions.storage_for_slots()
        )
        info = worker_info(self.worker_id, self.queues, list(self.jobs), concurrency)
        self._presence = Presence(self.storage, info)
        self._sweeper = Sweeper(self.worker_id, self.storage, self.jobs)
        self._pruner = Pruner(self.worker_id)
        self._scheduler = Scheduler(
            self.worker_id,
            self.jobs,
            registered_schedules() if schedules is None else schedules,
        )

    @property
    def processed(self) -> int:
        """Executions this worker ended (finished, released or given up)."""
        return self._held.executed_total

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
            if self._completions is not None:
                self._completions.close()
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
                self._held.heartbeat_if_due()
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
                self._claim(claiming=False)  # completions still arrive
                self._held.heartbeat_if_due()
                self._presence.seen_if_due(time.monotonic())
            except DatabaseError as error:
                logger.warning("worker=%s event=database_error error=%s", self.worker_id, error)
                close_old_connections()
            self._wake.wait(0.05)
            self._wake.clear()
        if self._completions is not None:
            self._completions.close()  # what is handed in now is written by its execution
        self.left_running = self._held.release_all(self.grace)

    def _busy(self) -> int:
        return self._held.counts()[0]

    def _free(self) -> tuple[int, int]:
        """Free thread slots and free event loop slots, each 0 when no job runs there."""
        held, on_loop = self._held.counts()
        on_threads = held - on_loop
        # Runs claimed for slots that a committed completion frees are held early.
        return (
            max(0, self.concurrency - on_threads) if self._thread_jobs else 0,
            max(0, self.async_concurrency - on_loop) if self._loop_jobs else 0,
        )

    def _claim(self, *, claiming: bool = True) -> list[ClaimedRun]:
        """Commit the completions handed in and claim runs for the free slots (counting
        the slots those completions free), in one transaction when there are both."""
        taken = [] if self._completions is None else self._completions.take()
        on_threads, on_loop = self._free() if claiming else (0, 0)
        if claiming:
            on_threads += len(taken)  # their slots are free once the transaction commits
        claimed_at = time.monotonic()

        def claim() -> Claimed:
            for_threads = self._take(self._thread_jobs, on_threads, 0)
            if self._event_loop is None:
                return for_threads, []
            return for_threads, self._take(self._loop_jobs, on_loop, len(for_threads))

        if not taken:
            for_threads, for_loop = claim()
        else:
            assert self._completions is not None
            completions = self._completions

            def claim_then_complete() -> tuple[Claimed, list[LeaseLost | None]]:
                # Claim first: a concurrency key one of these completions frees is not
                # taken again by this worker before every other worker can see it free.
                # (Their parents are locked before: cancel_run() locks a parent, then
                # its children, which this claim may take.)
                return claim(), completions.write(taken)

            try:
                (for_threads, for_loop), outcomes = self.storage.together(
                    claim_then_complete, completing=[item.lease for item in taken]
                )
            except StorageError as error:
                # A completion's write failed (a lock timeout, say): nothing was written
                # and nothing claimed. Each execution writes its own, as without batching.
                completions.give_back(taken)
                logger.warning(
                    "worker=%s event=completions_written_singly error=%s", self.worker_id, error
                )
                return []
            except BaseException:
                completions.give_back(taken)
                raise
            completions.committed(taken, outcomes)
        self._hand_out(for_threads, claimed_at, on_loop=False)
        self._hand_out(for_loop, claimed_at, on_loop=True)
        return for_threads + for_loop

    def _take(self, jobs: dict[str, Job], free: int, taking: int) -> list[ClaimedRun]:
        """Claim up to ``free`` runs of ``jobs``, ``taking`` more already being claimed."""
        if self.max_runs is not None:
            free = min(free, self.max_runs - self._claimed_total - taking)
        if free <= 0:
            return []
        return self.storage.claim(
            owner=self.worker_id,
            job_names=jobs,
            queues=self.queues,
            limit=free,
            timeouts=self._timeouts,
        )

    def _hand_out(self, claimed: list[ClaimedRun], claimed_at: float, *, on_loop: bool) -> None:
        self._held.add(claimed, claimed_at, on_loop=on_loop)
        self._claimed_total += len(claimed)
        for item in claimed:
            if on_loop:
                assert self._event_loop is not None
                self._event_loop.submit(item)
            else:
                self._inbox.put(item)

    # -- slot threads ----------------------------------------------------------------------

    def _executed(self, run_id: uuid.UUID, held: Held | None) -> None:
        self._held.executed(run_id, held)
        self._wake.set()

    def _slot(self) -> None:
        try:
            while (claimed := self._inbox.get()) is not None:
                run_id = claimed.run.id
                held, hooks = self._held.hooks(claimed)
                try:
                    job = self.jobs[claimed.run.job_name]
                    execute_run(self._slot_storage, claimed, job, **hooks)
                except Exception:
                    # No longer heartbeated, the lease expires and another worker recovers
                    # the run. That counts a recovery, so a run that always breaks its
                    # worker ends failed instead of looping.
                    self._log_execution_error(run_id)
                    close_old_connections()
                finally:
                    reset_broken_connections()
                    self._executed(run_id, held)
        finally:
            connections.close_all()

    async def _execute_on_loop(self, claimed: ClaimedRun, database: Database) -> None:
        run_id = claimed.run.id
        held, hooks = self._held.hooks(claimed)
        try:
            job = self.jobs[claimed.run.job_name]
            await aexecute_run(self.storage, claimed, job, database=database, **hooks)
        except Exception:
            self._log_execution_error(run_id)  # as on a slot: the lease runs out
        finally:
            self._executed(run_id, held)

    def _log_execution_error(self, run_id: uuid.UUID) -> None:
        logger.exception("worker=%s run=%s event=execution_error", self.worker_id, run_id)
