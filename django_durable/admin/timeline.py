"""The run page's journal: each entry drawn on a timeline, and the run's last heartbeat."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ..conf import durable_settings
from ..models import Run, Step
from ..status import RunStatus, StepStatus
from ..waiting import journaled_error
from .display import format_duration, pretty_json


def last_heartbeat(run: Run) -> datetime | None:
    """Leases are renewed to now + STALE_AFTER, so that is when the last beat was."""
    if run.status != RunStatus.RUNNING or run.lease_expires_at is None:
        return None
    return run.lease_expires_at - timedelta(seconds=durable_settings.STALE_AFTER)


def timeline(steps: list[Step], run: Run, now: datetime) -> list[dict[str, Any]]:
    """Each journal entry with its bar's offset and width, as percentages of the run."""
    starts = [t for t in [run.started_at, *(step.started_at for step in steps)] if t]
    ends = [t for t in [run.finished_at, *(step.finished_at for step in steps)] if t]
    if run.finished_at is None and run.status == RunStatus.RUNNING:
        ends.append(now)
    begin, end = min(starts, default=None), max(ends, default=None)
    span = (end - begin).total_seconds() if begin and end and end > begin else 0.0
    rows = []
    for step in steps:
        offset = width = 0.0
        if span and step.started_at and begin:
            offset = 100 * (step.started_at - begin).total_seconds() / span
            finished = step.finished_at or end or step.started_at
            width = max(0.5, 100 * (finished - step.started_at).total_seconds() / span)
            width = min(width, 100 - offset)
        step_duration = (
            step.finished_at - step.started_at if step.started_at and step.finished_at else None
        )
        raised = None
        if step.status == StepStatus.COMPLETED:
            raised = journaled_error(step.kind, step.name, step.result)
        failed = step.status == StepStatus.FAILED or raised is not None
        rows.append(
            {
                "step": step,
                # Completed in the journal, yet it raised in the job (children failed, an
                # event timed out): drawn as the operation that failed.
                "raised": {"type": type(raised).__name__, "message": str(raised)}
                if raised
                else None,
                "failed_children": getattr(raised, "failures", []),
                "shown_status": StepStatus.FAILED if failed else step.status,
                "shown_label": "Raised" if raised else step.get_status_display(),
                "offset": f"{offset:.2f}",
                "width": f"{width:.2f}",
                "duration": format_duration(step_duration),
                "error": step.error,
                "result_json": pretty_json(step.result) if step.result is not None else None,
            }
        )
    return rows
