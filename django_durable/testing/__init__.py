"""Helpers for testing code that uses django_durable.

``run_until_idle()`` executes pending runs on the calling thread and its database
connection, so it works inside Django's ``TestCase`` transactions. ``InMemoryStorage``
with ``use_storage()`` runs jobs with no database at all. Factories live in
``django_durable.testing.factories`` (needs factory-boy) and the storage conformance
suite in ``django_durable.testing.conformance``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from ..exceptions import RunTimedOut
from ..jobs import job_timeouts, registered_jobs
from ..runner import execute_run
from ..storage import _installed, get_storage
from ..storage.base import ClaimedRun, Storage
from .memory import Clock, InMemoryStorage
from .time_travel import TimeTravel, storage_for_runs, time_travel

__all__ = [
    "Clock",
    "InMemoryStorage",
    "TimeTravel",
    "run_until_idle",
    "time_travel",
    "use_storage",
]


S = TypeVar("S", bound=Storage)


@contextmanager
def use_storage(storage: S) -> Iterator[S]:
    """Make ``storage`` the one every part of django_durable uses inside the block:
    ``Job.enqueue``, ``get_run``, ``send_event``, ``cancel_run``, ``run_until_idle``..."""
    _installed.append(storage)
    try:
        yield storage
    finally:
        _installed.remove(storage)


def run_until_idle(
    *,
    queues: Sequence[str] | None = None,
    max_runs: int | None = None,
    storage: Storage | None = None,
) -> int:
    """Execute runnable runs one by one until none is left; return how many ran.

    Runs of every queue are taken unless ``queues`` is given. Runs waiting for a future
    time (a retry backoff, ``run_after``, a sleep) are left waiting; inside
    ``time_travel()``, ``clock.advance()`` makes them due. Job timeouts are enforced
    before each operation, as in a worker. ``storage`` defaults to ``get_storage()``.
    """
    storage = storage or get_storage()
    jobs = registered_jobs()
    timeouts = job_timeouts(jobs)
    owner = f"run_until_idle:{os.getpid()}"
    executed = 0
    while max_runs is None or executed < max_runs:
        storage.promote_due(limit=100)
        claimed = storage.claim(
            owner=owner, job_names=jobs, queues=queues, limit=1, timeouts=timeouts
        )
        if not claimed:
            break
        (run,) = claimed
        guard = _deadline_guard(run, _timer(storage))
        executing = storage_for_runs(storage)
        execute_run(executing, run, jobs[run.run.job_name], before_operation=guard)
        executed += 1
    return executed


def _timer(storage: Storage) -> Callable[[], float]:
    """Seconds by the clock deadlines follow: an ``InMemoryStorage``'s own, so that
    ``advance()`` moves timeouts too."""
    if isinstance(storage, InMemoryStorage):
        return storage.clock.seconds
    return time.monotonic


def _deadline_guard(claimed: ClaimedRun, timer: Callable[[], float]) -> Callable[[], None] | None:
    """Enforce a job's timeout as a worker does (cancel requests reach the job through
    its fenced writes)."""
    if claimed.time_left is None:
        return None
    deadline = timer() + claimed.time_left

    def before_operation() -> None:
        if timer() >= deadline:
            raise RunTimedOut(f"run {claimed.run.id} passed its deadline")

    return before_operation
