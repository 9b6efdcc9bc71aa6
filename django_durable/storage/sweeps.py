"""Housekeeping any worker does: recover expired leases, fail overdue runs, wake due ones.

Each sweep is one of the library's own writes (see ``own_writes.py``), run by
``ORMStorage``; times are the database clock's. A run the sweep ends is ended in a
savepoint of its own (``rows.one_row``): a row that breaks it is failed as malformed and
reported, and the sweep goes on with the next one, so no row can stop every worker.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.db.models import F, Q
from django.utils import timezone

from ..exceptions import MalformedRun
from ..malformed import error_history, report_malformed
from ..models import Run
from ..notify import announce
from ..status import RunStatus
from . import leases
from .base import StaleSweep
from .dbclock import DbNow
from .leases import CLEAR_LEASE
from .lifecycle import Ending, ended
from .rows import one_row

# What a run ended by a sweep clears besides its lease.
_ENDED = {"wake_at": None, "waiting_for": None, **CLEAR_LEASE}


def _past_deadline() -> Q:
    return Q(deadline__isnull=False, deadline__lt=DbNow())


def recover_stale(alias: str, *, max_recoveries: int, limit: int) -> StaleSweep:
    """Requeue runs whose lease expired; fail (or cancel) those out of recoveries."""
    # A run past its deadline is left to ``fail_overdue``: requeued, it would only time
    # out at its next claim, counted as a recovery. Its deadline can pass between that
    # sweep and this one, hence the condition here too.
    expired = leases.expired() & ~_past_deadline()
    columns = ("pk", "recoveries", "errors", "attempt", "queue_name", "cancel_requested")
    # Where there are no row locks (SQLite) Django leaves the clause out.
    stale = Run.objects.using(alias).filter(expired).order_by("lease_expires_at")
    stale = stale.select_for_update(skip_locked=True)
    rows = [dict(zip(columns, row, strict=True)) for row in stale.values_list(*columns)[:limit]]
    requeue = [
        row for row in rows if not row["cancel_requested"] and row["recoveries"] < max_recoveries
    ]
    if requeue:
        # One statement of constants for the lot: nothing a row holds can break it.
        Run.objects.using(alias).filter(expired, pk__in=[row["pk"] for row in requeue]).update(
            status=RunStatus.PENDING, recoveries=F("recoveries") + 1, **CLEAR_LEASE
        )
        announce(alias, [row["queue_name"] for row in requeue])
    failed: list[uuid.UUID] = []
    cancelled: list[uuid.UUID] = []
    for row in rows:
        if row in requeue:
            continue
        still = expired & Q(pk=row["pk"])
        end = functools.partial(_end_stale, alias, still, row, max_recoveries)
        if one_row(
            alias,
            row["pk"],
            end,
            settle=functools.partial(_fail_malformed, alias, row["pk"], still),
        ):
            (cancelled if row["cancel_requested"] else failed).append(row["pk"])
    return StaleSweep(requeued=[row["pk"] for row in requeue], failed=failed, cancelled=cancelled)


def fail_overdue(alias: str, *, limit: int) -> list[uuid.UUID]:
    """Fail waiting runs past their deadline, and running ones whose worker is stuck too
    (their lease expired); cancel their children.

    A running run whose worker still heartbeats is left to that worker: its guard raises
    ``RunTimedOut`` at the run's next operation and the worker fails it, freeing its key
    only then. Failing it here would free the key while the worker still executes a step
    that ignores the timeout, and the key's next run would start beside it.
    """
    overdue = _past_deadline() & (Q(status=RunStatus.WAITING) | leases.expired())
    failed = []
    rows = Run.objects.using(alias).filter(overdue).order_by("deadline")
    rows = rows.select_for_update(skip_locked=True)  # as in recover_stale
    for pk, errors, attempt, deadline in rows.values_list("pk", "errors", "attempt", "deadline")[
        :limit
    ]:
        still = overdue & Q(pk=pk)
        timed_out = {
            "attempt": attempt,
            "type": "django_durable.exceptions.RunTimedOut",
            "message": f"the run's deadline {deadline} passed",
            "traceback": "",
        }
        end = functools.partial(_end_overdue, alias, still, pk, errors, timed_out)
        if one_row(alias, pk, end, settle=functools.partial(_fail_malformed, alias, pk, still)):
            failed.append(pk)
    return failed


def _end_stale(alias: str, still: Q, row: dict[str, Any], max_recoveries: int) -> bool:
    ending: dict[str, Any] = {"finished_at": timezone.now(), **CLEAR_LEASE}
    if row["cancel_requested"]:
        ending["status"] = RunStatus.CANCELLED
        return _end(alias, row["pk"], still, ending)
    errors, problem = error_history(row["errors"])
    ending["status"] = RunStatus.FAILED
    ending["errors"] = [*errors, _worker_lost(row, max_recoveries)]
    return _end(alias, row["pk"], still, ending, problem=problem)


def _end_overdue(
    alias: str, still: Q, run_id: uuid.UUID, stored_errors: Any, timed_out: dict[str, Any]
) -> bool:
    errors, problem = error_history(stored_errors)
    ending = {
        "status": RunStatus.FAILED,
        "errors": [*errors, timed_out],
        "finished_at": timezone.now(),
        **_ENDED,
    }
    return _end(alias, run_id, still, ending, problem=problem)


def _end(
    alias: str,
    run_id: uuid.UUID,
    still: Q,
    changes: dict[str, Any],
    *,
    problem: str | None = None,
    takes_children: bool = True,
) -> bool:
    """End a run outside its worker if it is ``still`` as the sweep found it: write
    ``changes``, then what its end implies (``lifecycle.ended``). ``problem``: what was
    wrong with the row, reported once the run is ended (and so never swept again)."""
    if not Run.objects.using(alias).filter(still).update(**changes):
        return False
    queue_name, parent_id, key = (
        Run.objects.using(alias)
        .filter(pk=run_id)
        .values_list("queue_name", "parent_id", "concurrency_key")
        .get()
    )
    ending = Ending(run_id, queue_name, parent_id, takes_children, keyed=key is not None)
    ended(alias, [ending])
    if problem is not None:
        report_malformed(run_id, problem, "errors_replaced")
    return True


def _fail_malformed(alias: str, run_id: uuid.UUID, still: Q, problem: str) -> str:
    """The fallback for a row the sweep could not end: fail it as malformed, with a
    history of that one error, free its key and wake its parent. Its children are left
    to their own ends: cancelling them may be what broke."""
    error = {
        "attempt": 1,
        "type": f"{MalformedRun.__module__}.{MalformedRun.__qualname__}",
        "message": f"the sweep could not end this run: {problem}",
        "traceback": "",
    }
    changes = {
        "status": RunStatus.FAILED,
        "errors": [error],
        "finished_at": timezone.now(),
        **_ENDED,
    }
    if not _end(alias, run_id, still, changes, takes_children=False):
        return "skipped"
    return "failed"


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
    # Constants only, and the columns read are never null: no row can break this one
    # statement, so promotions need no savepoint per row.
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
