"""The runs a worker holds: claimed and not yet finished or given up.

Their leases are kept alive by the worker's heartbeat, and each execution checks its
entry (the guard) before every operation: a lease the database no longer renewed, a
cancellation or a deadline stops the run there, on a thread slot or the event loop.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from .atomic import AtomicLeases
from .conf import durable_settings
from .exceptions import LeaseLost, RunCancelled, RunTimedOut, WorkerStopping
from .storage.base import Checkpoint, ClaimedRun, Lease, Storage

logger = logging.getLogger("django_durable")


@dataclass(slots=True)
class Held:
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


class HeldRuns:
    """A worker's held runs, shared by its main thread (claims, heartbeats) and the
    threads and loop that execute them. ``runs`` is read and written under the lock."""

    def __init__(self, worker_id: str, storage: Storage, stopping: threading.Event) -> None:
        self.worker_id = worker_id
        self.storage = storage
        self.runs: dict[uuid.UUID, Held] = {}
        self.executed_total = 0
        self._stopping = stopping
        self._lock = threading.Lock()
        self.atomic = AtomicLeases(
            holds_database=storage.transactions_hold_database,
            renewable=self._renewable,
            renewed=self._renewed,
        )

    def counts(self) -> tuple[int, int]:
        """Runs held in all, and how many of them execute on the event loop."""
        with self._lock:
            return len(self.runs), sum(held.on_loop for held in self.runs.values())

    def add(self, claimed: list[ClaimedRun], claimed_at: float, *, on_loop: bool) -> None:
        with self._lock:
            for item in claimed:
                self.runs[item.run.id] = Held(
                    lease=item.lease,
                    renewed_at=claimed_at,
                    deadline=None if item.time_left is None else claimed_at + item.time_left,
                    on_loop=on_loop,
                )

    def hooks(self, claimed: ClaimedRun) -> tuple[Held | None, dict[str, Any]]:
        """The entry ``claimed`` was claimed with, and the hooks its execution takes."""
        run_id = claimed.run.id
        with self._lock:
            held = self.runs.get(run_id)
        return held, {
            "before_operation": self.guard(run_id),
            "before_end": functools.partial(self.ending, run_id, held),
            "atomic_leases": self.atomic,
        }

    def executed(self, run_id: uuid.UUID, held: Held | None) -> None:
        with self._lock:
            if self.runs.get(run_id) is held:  # not a newer claim's entry
                del self.runs[run_id]
            self.executed_total += 1

    def guard(self, run_id: uuid.UUID) -> Callable[[], None]:
        """Checked before each operation a job executes, each step attempt and each flush."""
        stale_after = durable_settings.STALE_AFTER
        with self._lock:
            claimed = self.runs.get(run_id)

        def before_operation() -> None:
            self.atomic.wait_for_database(run_id)
            with self._lock:
                held = self.runs.get(run_id)
            # Not the entry this execution was claimed with: the run was given up, or
            # claimed anew (a new lease) while this execution was frozen.
            if held is None or held is not claimed:
                raise LeaseLost(f"run {run_id}: this worker no longer holds its lease")
            if held.lost:
                raise LeaseLost(f"run {run_id}: the database did not renew its lease")
            # Monotonic time, so a worker that was frozen (SIGSTOP, a paused VM) sees
            # how long it was gone before it starts anything.
            if time.monotonic() - held.renewed_at >= stale_after:
                raise LeaseLost(f"run {run_id}: no heartbeat succeeded for {stale_after}s")
            if held.cancel_requested:
                raise RunCancelled
            if held.deadline is not None and time.monotonic() >= held.deadline:
                raise RunTimedOut(f"run {run_id} passed its deadline")
            if self._stopping.is_set():
                raise WorkerStopping

        return before_operation

    def ending(self, run_id: uuid.UUID, claimed: Held | None) -> None:
        with self._lock:
            if self.runs.get(run_id) is claimed and claimed is not None:
                claimed.ending = True

    def heartbeat_if_due(self) -> None:
        # Runs inside atomic steps are left out: their row is locked by their own
        # transaction, which renews their lease itself.
        with self.atomic.heartbeat() as leave_out:
            if leave_out is not None:
                self._heartbeat(leave_out)

    def _heartbeat(self, leave_out: frozenset[uuid.UUID]) -> None:
        now = time.monotonic()
        interval = durable_settings.heartbeat_interval
        with self._lock:
            due = {
                run_id: held
                for run_id, held in self.runs.items()
                if not held.lost and now - held.renewed_at >= interval and run_id not in leave_out
            }
        if not due:
            return
        # Renewal counts from before the statement is sent, so the worker's own view of
        # its lease never outlives the database's; and only for the leases the database
        # renewed: a run taken over meanwhile must not look fresh to its guard.
        beat = self.storage.heartbeat(self.worker_id, list(due))
        lost = []
        with self._lock:
            for run_id, held in due.items():
                if self.runs.get(run_id) is not held:
                    continue  # finished (or claimed anew) while the heartbeat ran
                if run_id in beat.renewed:
                    held.renewed_at = now
                    held.cancel_requested = run_id in beat.cancel_requested
                elif not held.ending:
                    held.lost = True
                    lost.append(run_id)
        for run_id in lost:
            logger.warning("worker=%s run=%s event=lease_not_renewed", self.worker_id, run_id)

    def release_all(self, grace: float) -> int:
        """After the grace period: give up what still runs (its later writes are fenced
        out); how many executions that was."""
        with self._lock:
            stuck = [held.lease for held in self.runs.values()]
            self.runs.clear()
        for lease in stuck:
            try:
                self.storage.release(lease, Checkpoint())
                logger.warning(
                    "worker=%s run=%s event=released_after_grace grace=%s",
                    self.worker_id,
                    lease.run_id,
                    grace,
                )
            except (LeaseLost, DatabaseError) as error:
                logger.warning(
                    "worker=%s run=%s event=release_failed error=%s",
                    self.worker_id,
                    lease.run_id,
                    error,
                )
        return len(stuck)

    def _renewable(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        with self._lock:
            return [other for other, held in self.runs.items() if other != run_id and not held.lost]

    def _renewed(self, run_ids: Collection[uuid.UUID], at: float) -> None:
        """An atomic step's transaction renewed these leases at monotonic time ``at``."""
        with self._lock:
            for run_id in run_ids:
                held = self.runs.get(run_id)
                if held is not None and not held.lost:
                    held.renewed_at = max(held.renewed_at, at)
