"""Housekeeping any worker does: recover expired leases, fail overdue runs, wake due ones.

Each sweep is one of the library's own writes (see ``own_writes.py``), run by
``ORMStorage``; times are the database clock's.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connections
from django.db.models import F, Q
from django.utils import timezone

from ..models import ConcurrencySlot, Run
from ..notify import announce
from ..status import RunStatus
from .base import StaleSweep
from .dbclock import DbNow
from .waits import CLEAR_LEASE, cancel_children, wake_parent_if_ready


def recover_stale(alias: str, *, max_recoveries: int, limit: int) -> StaleSweep:
    """Requeue runs whose lease expired; fail (or cancel) those out of recoveries."""
    expired = dict(status=RunStatus.RUNNING, lease_expires_at__lt=DbNow())
    columns = ("pk", "recoveries", "errors", "attempt", "queue_name", "cancel_requested")
    stale = Run.objects.using(alias).filter(**expired).order_by("lease_expires_at")
    if connections[alias].vendor != "sqlite":
        stale = stale.select_for_update(skip_locked=True)
    rows = [dict(zip(columns, row, strict=True)) for row in stale.values_list(*columns)[:limit]]
    requeue = [
        row for row in rows if not row["cancel_requested"] and row["recoveries"] < max_recoveries
    ]
    if requeue:
        Run.objects.using(alias).filter(pk__in=[row["pk"] for row in requeue], **expired).update(
            status=RunStatus.PENDING, recoveries=F("recoveries") + 1, **CLEAR_LEASE
        )
        announce(alias, [row["queue_name"] for row in requeue])
    failed: list[uuid.UUID] = []
    cancelled: list[uuid.UUID] = []
    for row in rows:
        if row in requeue:
            continue
        ending: dict[str, Any] = {"finished_at": timezone.now(), **CLEAR_LEASE}
        if row["cancel_requested"]:
            ending["status"] = RunStatus.CANCELLED
        else:
            ending["status"] = RunStatus.FAILED
            ending["errors"] = [*row["errors"], _worker_lost(row, max_recoveries)]
        if Run.objects.using(alias).filter(pk=row["pk"], **expired).update(**ending):
            (cancelled if row["cancel_requested"] else failed).append(row["pk"])
    for run_id in failed + cancelled:
        _after_end(alias, run_id)
    return StaleSweep(requeued=[row["pk"] for row in requeue], failed=failed, cancelled=cancelled)


def _after_end(alias: str, run_id: uuid.UUID) -> None:
    """Free the key of a run ended outside its worker, and wake a waiting parent."""
    ConcurrencySlot.objects.using(alias).filter(run_id=run_id).delete()
    parent_id = (
        Run.objects.using(alias).filter(pk=run_id).values_list("parent_id", flat=True).first()
    )
    if parent_id is not None:
        wake_parent_if_ready(alias, parent_id)


def fail_overdue(alias: str, *, limit: int) -> list[uuid.UUID]:
    """Fail waiting runs past their deadline, and running ones whose worker is stuck too
    (their lease expired); cancel their children.

    A running run whose worker still heartbeats is left to that worker: its guard raises
    ``RunTimedOut`` at the run's next operation and the worker fails it, freeing its key
    only then. Failing it here would free the key while the worker still executes a step
    that ignores the timeout, and the key's next run would start beside it.
    """
    overdue = Q(deadline__isnull=False, deadline__lt=DbNow()) & (
        Q(status=RunStatus.WAITING) | Q(status=RunStatus.RUNNING, lease_expires_at__lt=DbNow())
    )
    failed = []
    rows = Run.objects.using(alias).filter(overdue).order_by("deadline")
    if connections[alias].vendor != "sqlite":
        rows = rows.select_for_update(skip_locked=True)
    for pk, errors, attempt, deadline in rows.values_list("pk", "errors", "attempt", "deadline")[
        :limit
    ]:
        timed_out = {
            "attempt": attempt,
            "type": "django_durable.exceptions.RunTimedOut",
            "message": f"the run's deadline {deadline} passed",
            "traceback": "",
        }
        ended = (
            Run.objects.using(alias)
            .filter(overdue, pk=pk)
            .update(
                status=RunStatus.FAILED,
                errors=[*errors, timed_out],
                finished_at=timezone.now(),
                wake_at=None,
                waiting_for=None,
                **CLEAR_LEASE,
            )
        )
        if ended:
            failed.append(pk)
            cancel_children(alias, pk)
            _after_end(alias, pk)
    return failed


def promote_due(alias: str, *, limit: int) -> int:
    """Make waiting runs whose wake time passed pending again."""
    due = dict(status=RunStatus.WAITING, wake_at__lte=DbNow())
    rows = list(
        Run.objects.using(alias)
        .filter(**due)
        .order_by("wake_at")
        .values_list("pk", "queue_name")[:limit]
    )
    if not rows:
        return 0
    promoted = (
        Run.objects.using(alias)
        .filter(pk__in=[pk for pk, _ in rows], **due)
        .update(status=RunStatus.PENDING, wake_at=None, waiting_for=None)
    )
    announce(alias, [queue_name for _, queue_name in rows])
    return promoted


def _worker_lost(row: dict[str, Any], max_recoveries: int) -> dict[str, Any]:
    return {
        "attempt": row["attempt"],
        "type": "django_durable.WorkerLost",
        "message": f"the run's worker stopped heartbeating {row['recoveries'] + 1} times "
        f"(DURABLE['MAX_RECOVERIES'] is {max_recoveries})",
        "traceback": "",
    }
