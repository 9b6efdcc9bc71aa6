"""The run context's waiting operations: sleep, events and child runs.

Each takes a journal position. While it waits, its entry is ``waiting`` and the run is
parked without a worker slot; when the run is picked up again, replay reaches the same
position and the operation resolves (the timer fired, the event or the children
arrived) or parks the run again. Checking for an event or for finished children and
parking happen in one transaction that begins by locking the run's row, as do sending
an event and finishing a child, so no wake-up is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .durations import optional_timedelta, to_timedelta
from .exceptions import ChildRunFailed, EventTimeout, Suspended
from .jobs import Job
from .journal import Journal, describe_error
from .status import FINISHED_STATUSES, RunStatus, StepKind, StepStatus
from .storage.base import Checkpoint, FencedTransaction


@dataclass(frozen=True, slots=True)
class ChildHandle:
    """A child run started by ``ctx.start_child``; pass it to ``ctx.wait_for_children``."""

    id: uuid.UUID
    job_name: str


@dataclass(frozen=True, slots=True)
class _Operation:
    """One waiting operation at its journal position: resolve it, or park the run on it."""

    journal: Journal
    position: int
    kind: StepKind
    name: str
    started: datetime | None

    def entry(self, status: StepStatus, result: Any) -> Checkpoint:
        entry = self.journal.entry(
            position=self.position,
            name=self.name,
            status=status,
            result=result,
            started=self.started,
            kind=self.kind,
        )
        return self.journal.with_entry(entry)

    def resolve(self, tx: FencedTransaction, result: Any) -> Checkpoint:
        batch = self.entry(StepStatus.COMPLETED, result)
        tx.write(batch)
        return batch

    def park(
        self,
        tx: FencedTransaction,
        result: Any,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any],
    ) -> Checkpoint:
        batch = self.entry(StepStatus.WAITING, result)
        tx.suspend(batch, wake_at=wake_at, waiting_for=waiting_for)
        return batch


# -- sleep ---------------------------------------------------------------------------


def sleep(journal: Journal, name: str, delay: timedelta | float) -> None:
    """Pause the run for ``delay`` (a timedelta or seconds) without holding a worker.

    The wake time is computed once, from the database clock, and journaled. A delay that
    is not a duration is a ``TypeError`` here, a negative one a ``ValueError``.
    """
    delta = to_timedelta(delay, f"the delay of ctx.sleep({name!r})")
    _sleep(journal, name, lambda now: now + delta)


def sleep_until(journal: Journal, name: str, when: datetime) -> None:
    """Pause the run until ``when`` (timezone-aware) without holding a worker."""
    if not isinstance(when, datetime):
        raise TypeError(f"ctx.sleep_until({name!r}) needs a timezone-aware datetime, got {when!r}")
    if when.tzinfo is None:
        raise ValueError("sleep_until needs a timezone-aware datetime")
    _sleep(journal, name, lambda now: when)


def _sleep(journal: Journal, name: str, wake_time: Callable[[datetime], datetime]) -> None:
    position, recorded = journal.begin(StepKind.SLEEP, name)
    if recorded is not None:
        if recorded.status == StepStatus.WAITING:
            until = datetime.fromisoformat(recorded.result["until"])
            if journal.now() < until:  # woken early (a retry after a cancel): sleep on
                journal.guard()
                journal.suspend(journal.buffered(), wake_at=until)
                raise Suspended(f"sleeping until {until.isoformat()}")
            # Woken by its timer: mark it done.
            journal.buffer(
                journal.entry(
                    position=position,
                    name=name,
                    status=StepStatus.COMPLETED,
                    result=recorded.result,
                    started=recorded.started_at,
                    kind=StepKind.SLEEP,
                )
            )
        return
    journal.guard()
    now = journal.now()
    until = wake_time(now)
    result = {"until": until.isoformat()}
    status = StepStatus.COMPLETED if until <= now else StepStatus.WAITING
    entry = journal.entry(
        position=position, name=name, status=status, result=result, started=now, kind=StepKind.SLEEP
    )
    if status == StepStatus.COMPLETED:
        journal.buffer(entry)
        return
    journal.suspend(journal.with_entry(entry), wake_at=until)
    raise Suspended(f"sleeping until {until.isoformat()}")


def park_step_retry(
    journal: Journal,
    position: int,
    name: str,
    attempts: int,
    started: datetime,
    error: BaseException,
    delay: float,
) -> None:
    """Journal the step as waiting for its next attempt and park the run until then."""
    until = journal.now() + timedelta(seconds=delay)
    entry = journal.entry(
        position=position,
        name=name,
        status=StepStatus.WAITING,
        result={"retry_at": until.isoformat()},
        error=describe_error(error, journal.run.attempt),
        attempts=attempts,
        started=started,
    )
    journal.suspend(journal.with_entry(entry), wake_at=until)
    raise Suspended(f"step {name!r} retries at {until.isoformat()}")


# -- events --------------------------------------------------------------------------


def wait_for_event(journal: Journal, name: str, timeout: timedelta | float | None = None) -> Any:
    """Return the payload of the oldest unconsumed event ``name`` sent to this run,
    waiting (without a worker) until one arrives; ``EventTimeout`` after ``timeout``
    (a timedelta or seconds; anything else is a ``TypeError`` here)."""
    wait = optional_timedelta(timeout, f"the timeout of ctx.wait_for_event({name!r})")
    position, recorded = journal.begin(StepKind.EVENT, name)
    if recorded is not None and recorded.status == StepStatus.COMPLETED:
        return _event_outcome(name, recorded.result)
    journal.guard()
    if recorded is not None:  # woken: by the event, or by the timeout
        started = recorded.started_at
        deadline_text = (recorded.result or {}).get("deadline")
        deadline = datetime.fromisoformat(deadline_text) if deadline_text else None
    else:
        started = journal.now()
        deadline = None if wait is None else started + wait
    operation = _Operation(journal, position, StepKind.EVENT, name, started)
    with journal.fenced_transaction() as tx:
        found, payload = tx.take_event(name)
        timed_out = not found and deadline is not None and journal.now() >= deadline
        if found:
            result: dict[str, Any] = {"payload": payload}
            batch = operation.resolve(tx, result)
        elif timed_out:
            assert deadline is not None
            result = {"timeout": True, "deadline": deadline.isoformat()}
            batch = operation.resolve(tx, result)
        else:
            waiting = {"deadline": deadline.isoformat() if deadline else None}
            batch = operation.park(tx, waiting, wake_at=deadline, waiting_for={"event": name})
    journal.written(batch)
    if not (found or timed_out):
        raise Suspended(f"waiting for event {name!r}")
    return _event_outcome(name, result)


# -- child runs ----------------------------------------------------------------------


def start_child(journal: Journal, job: Job, *args: Any, **kwargs: Any) -> ChildHandle:
    """Start a child run of ``job``; created exactly once, however often this replays."""
    (handle,) = _start_children(journal, job, [(args, kwargs)])
    return handle


def start_children(
    journal: Journal, job: Job, kwargs_list: Sequence[Mapping[str, Any]]
) -> list[ChildHandle]:
    """Start one child run of ``job`` per keyword-argument mapping, in one transaction."""
    return _start_children(journal, job, [((), dict(kwargs)) for kwargs in kwargs_list])


def _start_children(
    journal: Journal, job: Job, calls: list[tuple[Sequence[Any], dict[str, Any]]]
) -> list[ChildHandle]:
    if not isinstance(job, Job):
        raise TypeError(f"start a child run of a @job, not {job!r}")
    position, recorded = journal.begin(StepKind.CHILDREN, job.name)
    if recorded is not None:
        return [ChildHandle(uuid.UUID(i), job.name) for i in recorded.result["children"]]
    if job.concurrency_key is not None:
        _refuse_key_cycle(journal, job.concurrency_key)
    if job.idempotency_key is not None:
        raise ValueError(
            "child runs take no idempotency key: the journal already creates them once"
        )
    # Checked live only: journaled children were created with arguments that bound then.
    new_runs = [
        job.new_run(tuple(args), kwargs, parent_id=journal.run.id) for args, kwargs in calls
    ]
    journal.guard()
    operation = _Operation(journal, position, StepKind.CHILDREN, job.name, None)
    with journal.fenced_transaction() as tx:
        ids = tx.create_runs(new_runs)
        batch = operation.resolve(tx, {"children": [str(child_id) for child_id in ids]})
    journal.written(batch)
    return [ChildHandle(child_id, job.name) for child_id in ids]


def _refuse_key_cycle(journal: Journal, key: str) -> None:
    """A run whose ancestor holds its concurrency key would wait for that ancestor, which
    may wait for it in turn: refuse it here, walking the ancestry (one read per level,
    only for keyed children)."""
    run = journal.run
    if key == run.concurrency_key:
        raise ValueError(
            f"a child of {run.job_name} cannot share its concurrency key "
            f"{key!r}: it would wait for its own parent to finish"
        )
    seen = {run.id}
    ancestor_id = run.parent_id
    while ancestor_id is not None and ancestor_id not in seen:
        seen.add(ancestor_id)
        ancestor = journal.storage.get_run(ancestor_id)
        if ancestor is None:
            return
        if ancestor.concurrency_key == key:
            raise ValueError(
                f"a child of {run.job_name} cannot take the concurrency key {key!r}: its "
                f"ancestor run {ancestor.id} ({ancestor.job_name}) holds it, so the child "
                "could wait for a run that waits for it"
            )
        ancestor_id = ancestor.parent_id


def wait_for_children(journal: Journal, handles: Sequence[ChildHandle]) -> list[Any]:
    """Wait (without a worker) until every child finished; return their outputs in
    order, or raise ``ChildRunFailed`` naming the children that did not complete."""
    ids = [handle.id for handle in handles]
    position, recorded = journal.begin(StepKind.WAIT_CHILDREN, "children")
    if recorded is not None and recorded.status == StepStatus.COMPLETED:
        return _children_outcome(recorded.result)
    journal.guard()
    started = recorded.started_at if recorded is not None else None
    operation = _Operation(journal, position, StepKind.WAIT_CHILDREN, "children", started)
    with journal.fenced_transaction() as tx:
        states = tx.children(ids)
        done = all(state.status in FINISHED_STATUSES for state in states)
        if done:
            result = {
                "outputs": [state.output for state in states],
                "failed": [
                    {
                        "id": str(state.id),
                        "status": state.status,
                        "error": {k: (state.error or {}).get(k) for k in ("type", "message")},
                    }
                    for state in states
                    if state.status != RunStatus.COMPLETED
                ],
            }
            batch = operation.resolve(tx, result)
        else:
            awaited = [str(child_id) for child_id in ids]
            batch = operation.park(
                tx, {"children": awaited}, wake_at=None, waiting_for={"children": awaited}
            )
    journal.written(batch)
    if not done:
        raise Suspended(f"waiting for {len(ids)} child runs")
    return _children_outcome(result)


# -- shared --------------------------------------------------------------------------


def journaled_error(kind: str, name: str, result: Any) -> Exception | None:
    """The exception a completed waiting operation's journaled outcome raises in the job
    (an event that timed out, children that did not complete), or None."""
    try:
        if kind == StepKind.EVENT and isinstance(result, dict):
            _event_outcome(name, result)
        elif kind == StepKind.WAIT_CHILDREN and isinstance(result, dict):
            _children_outcome(result)
    except (EventTimeout, ChildRunFailed) as error:
        return error
    except (KeyError, TypeError):
        return None  # not an outcome this version wrote
    return None


def _event_outcome(name: str, result: dict[str, Any]) -> Any:
    if result.get("timeout"):
        raise EventTimeout(name, result.get("deadline"))
    return result.get("payload")


def _children_outcome(result: dict[str, Any]) -> list[Any]:
    if result["failed"]:
        raise ChildRunFailed(result["failed"])
    return list(result["outputs"])
