"""A run's status transitions outside its worker, and what ending a run implies, once.

Ending a run (completed, failed or cancelled), whoever ends it (its worker, a sweep, an
operator), frees its concurrency key's slot and announces the queue (the key's next run
may start), takes its unfinished children with it unless it completed, and wakes a
parent waiting for it: ``ended()``, in the transaction that ended the run. Rows are
locked parent before child, the order ``cancel()`` walks a tree in, so two writers of
one family never wait for each other in a cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import F
from django.utils import timezone

from ..exceptions import RunNotFound
from ..malformed import describe_stored, report_malformed
from ..models import ConcurrencySlot, Run, RunEvent, Step
from ..notify import announce
from ..status import FINISHED_STATUSES, RunStatus
from .own_writes import own_transaction
from .rows import one_row


@dataclass(frozen=True)
class Ending:
    """A run that has just ended, as ``ended()`` needs it."""

    run_id: uuid.UUID
    queue_name: str
    parent_id: uuid.UUID | None
    # Whether its unfinished children end with it: every run that did not complete,
    # unless the caller cancels the tree itself (cancel()) or must not touch it.
    takes_children: bool
    keyed: bool = True  # False only when the run is known to have no concurrency key


def lock_parents(alias: str, parent_ids: Iterable[uuid.UUID | None]) -> None:
    """Lock the parents' rows before their children's are written: the order
    ``cancel()`` takes them in (a child locked first would deadlock with it)."""
    ids = sorted({parent_id for parent_id in parent_ids if parent_id is not None})
    if ids:
        list(Run.objects.using(alias).select_for_update().filter(pk__in=ids).values_list("pk"))


def ended(alias: str, endings: Sequence[Ending]) -> None:
    """What ending these runs implies, in the caller's transaction (see the module)."""
    keyed = [ending for ending in endings if ending.keyed]
    if keyed:
        slots = ConcurrencySlot.objects.using(alias)
        freed, _ = slots.filter(run_id__in=[ending.run_id for ending in keyed]).delete()
        if freed:
            announce(alias, sorted({ending.queue_name for ending in keyed}))
    for ending in endings:
        if ending.takes_children:
            cancel_children(alias, ending.run_id)
    for parent_id in dict.fromkeys(ending.parent_id for ending in endings):
        if parent_id is not None:
            wake_parent_if_ready(alias, parent_id)


def cancel(alias: str, run_id: uuid.UUID) -> None:
    """Cancel a run and its unfinished descendants, in one transaction.

    Pending and waiting runs end at once; a running one gets a cancel request that its
    worker acts on at the next operation. Raises ``RunNotFound``.
    """
    with own_transaction(alias):
        if not Run.objects.using(alias).select_for_update().filter(pk=run_id).exists():
            raise RunNotFound(f"no run with id {run_id}")
        frontier = [run_id]
        while frontier:
            runs = list(
                Run.objects.using(alias)
                .select_for_update()
                .filter(pk__in=frontier)
                .unfinished()
                .only("status", "parent_id", "concurrency_key", "queue_name")
            )
            idle = [run.pk for run in runs if run.status != RunStatus.RUNNING]
            Run.objects.using(alias).filter(pk__in=[run.pk for run in runs]).update(
                cancel_requested=True
            )
            Run.objects.using(alias).filter(pk__in=idle).update(
                status=RunStatus.CANCELLED,
                finished_at=timezone.now(),
                wake_at=None,
                waiting_for=None,
            )
            # The walk itself cancels their children, a level at a time.
            ended(
                alias,
                [
                    Ending(
                        run.pk,
                        run.queue_name,
                        run.parent_id,
                        takes_children=False,
                        keyed=run.concurrency_key is not None,
                    )
                    for run in runs
                    if run.status != RunStatus.RUNNING
                ],
            )
            frontier = list(
                Run.objects.using(alias)
                .filter(parent_id__in=[run.pk for run in runs])
                .unfinished()
                .values_list("pk", flat=True)
            )


def cancel_children(alias: str, parent_id: uuid.UUID) -> None:
    """A run that ended without completing takes its unfinished children with it."""
    children = (
        Run.objects.using(alias)
        .filter(parent_id=parent_id)
        .unfinished()
        .values_list("pk", flat=True)
    )
    for child_id in list(children):
        cancel(alias, child_id)


def retry(alias: str, run_id: uuid.UUID) -> None:
    """Make a failed or cancelled run pending again as its next attempt."""
    retryable = (RunStatus.FAILED, RunStatus.CANCELLED)
    _run_again(alias, run_id, retryable, "only failed or cancelled runs retry")


def restart(alias: str, run_id: uuid.UUID) -> None:
    """Clear a finished run's journal and make it pending again, as its next attempt.

    Every step runs again; events it consumed are back in its mailbox, so waits see them
    as the first execution did. Logs and the error history stay, tagged by attempt.
    """

    def forget() -> None:
        Step.objects.using(alias).filter(run_id=run_id).delete()
        RunEvent.objects.using(alias).filter(run_id=run_id).update(consumed_at=None)

    _run_again(
        alias,
        run_id,
        FINISHED_STATUSES,
        "only finished runs restart from scratch",
        forget=forget,
        output=None,
        progress=None,
        started_at=None,
    )


def _run_again(
    alias: str,
    run_id: uuid.UUID,
    allowed: Collection[str],
    refusal: str,
    *,
    forget: Callable[[], None] | None = None,
    **changes: Any,
) -> None:
    """Lock the run, check that its status allows it, and make it pending as its next
    attempt, with ``changes``; ``forget`` first clears what the attempt must not see."""
    with own_transaction(alias):
        run = (
            Run.objects.using(alias)
            .select_for_update()
            .filter(pk=run_id)
            .only("status", "queue_name")
            .first()
        )
        if run is None:
            raise RunNotFound(f"no run with id {run_id}")
        if run.status not in allowed:
            raise ValueError(f"run {run_id} is {run.status}; {refusal}")
        if forget is not None:
            forget()
        Run.objects.using(alias).filter(pk=run_id).update(
            status=RunStatus.PENDING,
            attempt=F("attempt") + 1,
            recoveries=0,
            deadline=None,  # a new attempt gets a new deadline when claimed
            finished_at=None,
            cancel_requested=False,
            wake_at=None,
            waiting_for=None,
            **changes,
        )
        announce(alias, [run.queue_name])


def wake(alias: str, run: Run) -> None:
    """Make a waiting run (whose row this transaction has locked) runnable now."""
    Run.objects.using(alias).filter(pk=run.pk, status=RunStatus.WAITING).update(
        status=RunStatus.PENDING, wake_at=None, waiting_for=None
    )
    announce(alias, [run.queue_name])


def wake_parent_if_ready(alias: str, parent_id: uuid.UUID) -> None:
    """Called by a finishing child, inside its own transaction.

    The parent's row is the parent's: whatever it holds, the child's end goes through.
    A parent whose ``waiting_for`` this version cannot read is reported and woken, and
    its replay finds out from its journal what it waits for.
    """
    one_row(
        alias,
        parent_id,
        lambda: _wake_parent_if_ready(alias, parent_id),
        settle=lambda problem: _wake_malformed(alias, parent_id),
    )


def _wake_parent_if_ready(alias: str, parent_id: uuid.UUID) -> None:
    # Lock the row whatever its status, and only then look at it: a status filter in
    # the WHERE would skip the row without waiting while the parent is still deciding
    # (running, holding its fence) and the wake-up would be lost.
    parent = (
        Run.objects.using(alias)
        .select_for_update()
        .filter(pk=parent_id)
        .only("status", "waiting_for", "queue_name")
        .first()
    )
    if parent is None or parent.status != RunStatus.WAITING:
        return
    awaited, problem = read_awaited(parent, "children")
    if problem is not None:
        wake(alias, parent)
        report_malformed(parent.pk, problem, "woken")
        return
    if not awaited:
        return
    unfinished = Run.objects.using(alias).filter(pk__in=awaited).unfinished().exists()
    if not unfinished:
        wake(alias, parent)


def read_awaited(run: Run, what: str) -> tuple[Any, str | None]:
    """What a waiting run's ``waiting_for`` says it waits for (``"event"``: a name,
    ``"children"``: run ids), or why it cannot be read. Waking a run is always safe,
    its replay parks it again, so a row that cannot be read is woken."""
    waiting_for = run.waiting_for
    if waiting_for is None:
        return None, None
    if not isinstance(waiting_for, dict):
        return None, f"waiting_for is {describe_stored(waiting_for)}, not an object"
    awaited = waiting_for.get(what)
    if what == "children" and awaited is not None:
        try:
            return [uuid.UUID(child_id) for child_id in awaited], None
        except (TypeError, ValueError, AttributeError):
            return None, f"waiting_for['children'] is {describe_stored(awaited)}, not run ids"
    return awaited, None


def _wake_malformed(alias: str, run_id: uuid.UUID) -> str:
    """The fallback when a parent's row broke the check: wake it, if it waits."""
    woken = Run.objects.using(alias).filter(pk=run_id, status=RunStatus.WAITING)
    queue_names = list(woken.values_list("queue_name", flat=True))
    if not woken.update(status=RunStatus.PENDING, wake_at=None, waiting_for=None):
        return "skipped"
    announce(alias, queue_names)
    return "woken"
