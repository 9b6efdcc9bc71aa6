"""Helpers for testing code that uses django_durable.

``run_until_idle()`` executes pending runs on the calling thread and its database
connection, so it works inside Django's ``TestCase`` transactions. Factories live in
``django_durable.testing.factories`` (needs factory-boy) and the storage conformance
suite in ``django_durable.testing.conformance``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..jobs import registered_jobs
from ..runner import execute_run
from ..storage import get_storage

__all__ = ["run_until_idle"]


def run_until_idle(*, queues: Sequence[str] | None = None, max_runs: int | None = None) -> int:
    """Execute runnable runs one by one until none is left; return how many ran.

    Runs of every queue are taken unless ``queues`` is given. Runs waiting for a future
    time (a retry backoff, ``run_after``) are left waiting.
    """
    storage = get_storage()
    jobs = registered_jobs()
    owner = f"run_until_idle:{os.getpid()}"
    executed = 0
    while max_runs is None or executed < max_runs:
        storage.promote_due(limit=100)
        claimed = storage.claim(owner=owner, job_names=jobs, queues=queues, limit=1)
        if not claimed:
            break
        execute_run(storage, claimed[0], jobs[claimed[0].run.job_name])
        executed += 1
    return executed
