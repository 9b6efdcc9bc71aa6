"""Helpers for testing code that uses django_durable.

``run_until_idle()`` executes pending runs on the calling thread and its database
connection, so it works inside Django's ``TestCase`` transactions. Factories live in
``django_durable.testing.factories`` (needs factory-boy) and the storage conformance
suite in ``django_durable.testing.conformance``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from ..exceptions import RunTimedOut
from ..jobs import registered_jobs
from ..runner import execute_run
from ..storage import get_storage
from ..storage.base import ClaimedRun

__all__ = ["run_until_idle"]


def run_until_idle(*, queues: Sequence[str] | None = None, max_runs: int | None = None) -> int:
    """Execute runnable runs one by one until none is left; return how many ran.

    Runs of every queue are taken unless ``queues`` is given. Runs waiting for a future
    time (a retry backoff, ``run_after``, a sleep) are left waiting. Job timeouts are
    enforced before each operation, as in a worker.
    """
    storage = get_storage()
    jobs = registered_jobs()
    timeouts = {
        name: job.timeout_delta.total_seconds()
        for name, job in jobs.items()
        if job.timeout_delta is not None
    }
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
        execute_run(storage, run, jobs[run.run.job_name], before_operation=_deadline_guard(run))
        executed += 1
    return executed


def _deadline_guard(claimed: ClaimedRun) -> Callable[[], None] | None:
    """Enforce a job's timeout as a worker does (cancel requests reach the job through
    its fenced writes)."""
    if claimed.time_left is None:
        return None
    deadline = time.monotonic() + claimed.time_left

    def before_operation() -> None:
        if time.monotonic() >= deadline:
            raise RunTimedOut(f"run {claimed.run.id} passed its deadline")

    return before_operation
