"""``Storage.fork`` for ``InMemoryStorage``, on its tables (the rules are in
``storage/fork_plan.py``, shared with the database storages)."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from typing import Any

from ..exceptions import RunNotFound
from ..ids import uuid7
from ..status import RunStatus
from ..storage.fork_plan import (
    FromStep,
    consumed_flags,
    plan_fork,
    refuse_status,
    started_children,
)
from .memory_state import EventRow, RunRow, Tables


def fork_tables(
    tables: Tables,
    run_id: uuid.UUID,
    now: datetime,
    *,
    from_step: FromStep,
    args: list[Any],
    kwargs: dict[str, Any],
) -> RunRow:
    """Insert the fork of ``run_id``; the caller's ``atomic()`` undoes it on an error."""
    old = tables.runs.get(run_id)
    if old is None:
        raise RunNotFound(f"no run with id {run_id}")
    refuse_status(run_id, old.status)
    entries = tables.steps.get(run_id, {})
    journal = [copy.deepcopy(entries[position]) for position in sorted(entries)]
    statuses = {
        child_id: tables.runs[child_id].status
        for child_id in started_children(journal)
        if child_id in tables.runs
    }
    plan = plan_fork(run_id, journal, from_step, statuses)
    row = RunRow(
        id=uuid7(),
        job_name=old.job_name,
        queue_name=old.queue_name,
        status=RunStatus.PENDING,
        priority=old.priority,
        args=copy.deepcopy(args),
        kwargs=copy.deepcopy(kwargs),
        run_after=now,
        created_at=now,
        concurrency_key=old.concurrency_key,
        scheduled_at=old.scheduled_at,
        forked_from=old.id,
    )
    tables.runs[row.id] = row
    tables.steps[row.id] = {entry.position: entry for entry in plan.kept}
    events = [event for event in tables.events if event.run_id == run_id]
    flags = consumed_flags(plan, ((e.name, e.consumed_at is not None) for e in events))
    tables.events.extend(
        EventRow(
            run_id=row.id,
            name=event.name,
            payload=copy.deepcopy(event.payload),
            consumed_at=(event.consumed_at or now) if kept else None,
        )
        for event, kept in zip(events, flags, strict=True)
    )
    return row
