"""Pruning as a worker's housekeeping: one batch when due, a pause between batches.

Every worker prunes (there is no leader); ``SKIP LOCKED`` in ``storage/prune.py`` keeps
two of them off the same families. A batch is short, and the worker's loop claims between
batches, so pruning a large backlog never holds the queue up for long.
"""

from __future__ import annotations

import logging
import random
import time

from .conf import durable_settings
from .jobs import job_retention_policies
from .storage import get_storage
from .storage.prune import Pruning, prune_batch
from .storage.workers import worker_pruned

logger = logging.getLogger("django_durable")

# Seconds between the batches of one pass while there is more to look at.
BATCH_PAUSE = 0.5
# Workers started together should not all prune at once: the first pass comes at a
# random moment within this many seconds (or PRUNE_INTERVAL, if shorter).
FIRST_PASS_WITHIN = 30.0


class Pruner:
    def __init__(self, worker_id: str) -> None:
        self.worker_id = worker_id
        interval = durable_settings.PRUNE_INTERVAL
        self.next_at = time.monotonic() + random.uniform(0, min(interval, FIRST_PASS_WITHIN))
        self.pass_: Pruning | None = None  # the pass under way, with where it stopped

    def prune_if_due(self, now: float) -> None:
        if now < self.next_at:
            return
        if self.pass_ is None:
            project = durable_settings.RETENTION
            self.pass_ = Pruning(default=project, jobs=job_retention_policies(project))
        batch_size = durable_settings.PRUNE_BATCH_SIZE
        started = time.monotonic()
        pruned = prune_batch(
            durable_settings.DATABASE, self.pass_, now=get_storage().now(), batch_size=batch_size
        )
        if pruned.runs:
            logger.info(
                "worker=%s event=pruned runs=%d steps=%d logs=%d events=%d duration=%.3f",
                self.worker_id,
                pruned.runs,
                pruned.steps,
                pruned.logs,
                pruned.events,
                time.monotonic() - started,
            )
        if self.pass_.done:
            self.pass_ = None
            worker_pruned(durable_settings.DATABASE, self.worker_id)
            self.next_at = now + durable_settings.PRUNE_INTERVAL
        else:
            self.next_at = now + BATCH_PAUSE
