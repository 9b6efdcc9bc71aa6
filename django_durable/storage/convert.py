"""Model rows to the storage protocol's plain records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..models import Run, Step
from ..status import RunStatus, StepKind, StepStatus
from .base import RunRecord, StepRecord

# Columns a claim loads: everything a RunRecord holds ("parent" loads parent_id).
RUN_FIELDS = (*(f for f in RunRecord.__slots__ if f != "parent_id"), "parent")
STEP_FIELDS = StepRecord.__slots__


def run_record(run: Run) -> RunRecord:
    return record_from_columns(
        {name: getattr(run, name) for name in (*RunRecord.__slots__, "status")}
    )


def record_from_columns(columns: Mapping[str, Any]) -> RunRecord:
    """The record of a run row given as its column values (by attribute name)."""
    values = {name: columns[name] for name in RunRecord.__slots__}
    values["status"] = RunStatus(columns["status"])
    return RunRecord(**values)


def step_record(step: Step) -> StepRecord:
    return StepRecord(
        position=step.position,
        kind=StepKind(step.kind),
        name=step.name,
        status=StepStatus(step.status),
        result=step.result,
        error=step.error,
        attempts=step.attempts,
        run_attempt=step.run_attempt,
        started_at=step.started_at,
        finished_at=step.finished_at,
    )
