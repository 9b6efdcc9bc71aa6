"""The registry of live workers: a row per ``runworker`` process, seen at each beat.

Times come from the database clock, the one that judges leases, so "live" means the
same thing to every worker and to the admin whatever their machines' clocks say.
"""

from __future__ import annotations

from django.db import IntegrityError

from ..models import Worker
from .base import WorkerInfo
from .dbclock import DbNow
from .own_writes import own_transaction

# Rows of workers unseen for this long are deleted when another worker registers, so
# restarts do not pile up rows forever.
FORGET_AFTER = 24 * 3600.0


def worker_seen(alias: str, info: WorkerInfo) -> None:
    workers = Worker.objects.using(alias)
    if workers.filter(pk=info.worker_id).update(last_seen_at=DbNow()):
        return
    # First beat, or the row was forgotten while this worker could not reach the database.
    try:
        with own_transaction(alias):
            workers.filter(last_seen_at__lt=DbNow(-FORGET_AFTER)).delete()
            workers.create(
                worker_id=info.worker_id,
                hostname=info.hostname,
                pid=info.pid,
                queues=info.queues,
                jobs=sorted(info.jobs),
                concurrency=info.concurrency,
                started_at=DbNow(),
                last_seen_at=DbNow(),
            )
    except IntegrityError:  # a second thread of the same worker got there first
        workers.filter(pk=info.worker_id).update(last_seen_at=DbNow())


def worker_stopped(alias: str, worker_id: str) -> None:
    Worker.objects.using(alias).filter(pk=worker_id).delete()


def worker_pruned(alias: str, worker_id: str) -> None:
    Worker.objects.using(alias).filter(pk=worker_id).update(pruned_at=DbNow())
