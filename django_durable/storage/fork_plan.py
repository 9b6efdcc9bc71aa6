"""What a fork keeps of a run's journal: the rules every storage's ``fork`` applies.

A fork is a new run of the same job whose journal starts as a copy of the old run's
entries before the fork point. Replay returns those entries' outcomes, so what they did
is not done again: the children they started are the fork's children too (it waits for
the same runs), and the events they consumed stay consumed. Everything from the fork
point on executes again, live.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..exceptions import RunNotFound
from ..operator_rules import RULES
from ..status import FINISHED_STATUSES, RunStatus, StepKind, StepStatus
from ..waiting import journaled_error
from .base import StepRecord

FromStep = int | str | None


@dataclass(frozen=True)
class ForkPlan:
    position: int  # entries before it are kept
    kept: list[StepRecord]  # as the fork's journal holds them
    # Children started by the kept entries, in the order they were started.
    reused_children: list[uuid.UUID]
    # Per event name, how many of the run's consumed events the kept entries took.
    consumed: Counter[str]


def refuse_status(run_id: uuid.UUID, status: str) -> None:
    """``ValueError`` unless the run is finished: a run still going (or parked) would go on
    beside its fork, both doing the same work."""
    refusal = RULES["fork"].refusal(status)
    if refusal is not None:
        raise ValueError(
            f"run {run_id} cannot be forked: {refusal}. A run that is still going would "
            "go on beside its fork; cancel it first (or wait for it to end), then fork it"
        )


def check_from_step(from_step: Any) -> None:
    """``TypeError`` for a ``from_step`` that is no position, step name or None."""
    if from_step is None or isinstance(from_step, str):
        return
    if isinstance(from_step, bool) or not isinstance(from_step, int):
        raise TypeError(
            f"from_step must be a journal position (int), an operation's name (str) or None "
            f"(the first failed or unfinished operation), not {from_step!r}"
        )


def started_children(journal: Iterable[StepRecord]) -> list[uuid.UUID]:
    """Every child run the journal's entries started, in the order they started them."""
    return [
        uuid.UUID(child_id)
        for entry in journal
        if entry.kind == StepKind.CHILDREN
        for child_id in _child_ids(entry)
    ]


def fork_position(
    run_id: uuid.UUID,
    journal: Sequence[StepRecord],
    from_step: FromStep,
    child_statuses: Mapping[uuid.UUID, str],
) -> int:
    """The position the fork executes again from (see ``fork_run``)."""
    check_from_step(from_step)
    if from_step is None:
        return failure_position(journal, child_statuses)
    if isinstance(from_step, str):
        for entry in journal:
            if entry.name == from_step:
                return entry.position
        names = ", ".join(dict.fromkeys(repr(entry.name) for entry in journal)) or "none"
        raise ValueError(
            f"run {run_id} has no operation named {from_step!r} in its journal "
            f"(its operations: {names})"
        )
    if not 0 <= from_step <= len(journal):
        raise ValueError(
            f"from_step {from_step} is out of range: run {run_id}'s journal holds "
            f"{len(journal)} operations, so from_step is 0 to {len(journal)} "
            f"({len(journal)}: keep them all)"
        )
    return from_step


def failure_position(journal: Sequence[StepRecord], child_statuses: Mapping[uuid.UUID, str]) -> int:
    """The first operation that failed or did not finish, a child run that did not
    complete counting as a failure of the operation that started it (waiting again for
    it would fail again); else the last operation if its outcome raised in the job (an
    event timed out); else the end of the journal (the job failed in its own code,
    after its last operation)."""
    for entry in journal:
        if entry.status in (StepStatus.FAILED, StepStatus.WAITING):
            return entry.position
        if entry.kind == StepKind.CHILDREN and any(
            child_statuses.get(uuid.UUID(child_id)) != RunStatus.COMPLETED
            for child_id in _child_ids(entry)
        ):
            return entry.position
    if journal and journaled_error(journal[-1].kind, journal[-1].name, journal[-1].result):
        return journal[-1].position
    return len(journal)


def plan_fork(
    run_id: uuid.UUID,
    journal: Sequence[StepRecord],
    from_step: FromStep,
    child_statuses: Mapping[uuid.UUID, str],
) -> ForkPlan:
    """What the fork keeps; ``child_statuses`` holds the status of every child run the
    journal started (``started_children``) that still exists."""
    position = fork_position(run_id, journal, from_step, child_statuses)
    # The fork is a first attempt: entries keep their outcomes under its attempt 1.
    kept = [replace(entry, run_attempt=1) for entry in journal if entry.position < position]
    consumed = Counter(
        entry.name
        for entry in kept
        if entry.kind == StepKind.EVENT
        and entry.status == StepStatus.COMPLETED
        and isinstance(entry.result, dict)
        and "payload" in entry.result
    )
    plan = ForkPlan(position, kept, started_children(kept), consumed)
    _check_children(run_id, plan, child_statuses)
    return plan


def _check_children(run_id: uuid.UUID, plan: ForkPlan, statuses: Mapping[uuid.UUID, str]) -> None:
    """The reused children must exist and be finished: a child that ends later would wake
    the old run, not the fork, which would wait for it for ever."""
    for child_id in plan.reused_children:
        status = statuses.get(child_id)
        if status is None:
            raise RunNotFound(
                f"run {run_id} cannot be forked from position {plan.position}: its child run "
                f"{child_id}, which the fork would reuse, no longer exists; fork from an "
                "earlier position to start it again"
            )
        if status not in FINISHED_STATUSES:
            raise ValueError(
                f"run {run_id} cannot be forked from position {plan.position}: its child run "
                f"{child_id}, which the fork would reuse, is {status}; wait for it to finish, "
                "or fork from the position that started it to start it again"
            )


def consumed_flags(plan: ForkPlan, events: Iterable[tuple[str, bool]]) -> list[bool]:
    """For the old run's events (name, consumed), oldest first: whether the fork's copy is
    consumed. Each wait took the oldest unconsumed event of its name, so the kept waits
    took the oldest consumed ones; the rest are in the fork's mailbox again."""
    left = Counter(plan.consumed)
    flags = []
    for name, consumed in events:
        take = consumed and left[name] > 0
        if take:
            left[name] -= 1
        flags.append(take)
    return flags


def _child_ids(entry: StepRecord) -> list[str]:
    result = entry.result if isinstance(entry.result, dict) else {}
    return [str(child_id) for child_id in result.get("children") or []]
