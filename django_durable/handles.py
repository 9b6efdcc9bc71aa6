"""RunHandle: what enqueue and lookups return, shaped like ``django.tasks.TaskResult``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async

from .exceptions import InvalidRunId, RunNotFound
from .status import FINISHED_STATUSES, RunStatus
from .storage import get_storage
from .storage.base import RunRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class RunHandle:
    """A snapshot of one run. ``refresh()`` re-reads it from the database in place."""

    id: uuid.UUID
    job_name: str
    queue_name: str
    status: RunStatus
    priority: int
    args: list[Any]
    kwargs: dict[str, Any]
    output: Any
    errors: list[dict[str, Any]]
    attempt: int
    progress: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    # The run this one is a fork of (``fork_run``), or None.
    forked_from: uuid.UUID | None = None
    # True when this enqueue inserted the run, False when an idempotency key matched.
    created: bool = False

    @classmethod
    def from_record(cls, record: RunRecord, *, created: bool = False) -> RunHandle:
        """Build a handle from a storage record."""
        return cls(
            created=created,
            **{f.name: getattr(record, f.name) for f in fields(cls) if f.name != "created"},
        )

    @property
    def error(self) -> dict[str, Any] | None:
        """The latest attempt's error (type, message, traceback), if any attempt failed."""
        return self.errors[-1] if self.errors else None

    @property
    def is_finished(self) -> bool:
        """True once the run is completed, failed or cancelled."""
        return self.status in FINISHED_STATUSES

    def refresh(self) -> None:
        """Reload every field from the database (the handle is frozen to everyone else)."""
        record = get_storage().get_run(self.id)
        if record is None:
            raise RunNotFound(f"run {self.id} no longer exists")
        fresh = RunHandle.from_record(record, created=self.created)
        for f in fields(self):
            object.__setattr__(self, f.name, getattr(fresh, f.name))

    async def arefresh(self) -> None:
        """Async ``refresh()``."""
        await sync_to_async(self.refresh)()


def parse_run_id(run_id: uuid.UUID | str) -> uuid.UUID:
    """``run_id`` as a UUID; ``InvalidRunId`` (a ``ValueError``) if it is not one."""
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(str(run_id))
    except ValueError:
        raise InvalidRunId(f"{run_id!r} is not a run id (a UUID)") from None


def get_run(run_id: uuid.UUID | str) -> RunHandle:
    """The run with this id; ``RunNotFound`` when there is none, ``InvalidRunId`` when
    ``run_id`` is not a UUID."""
    record = get_storage().get_run(parse_run_id(run_id))
    if record is None:
        raise RunNotFound(f"no run with id {run_id}")
    return RunHandle.from_record(record)


async def aget_run(run_id: uuid.UUID | str) -> RunHandle:
    """Async ``get_run()``: a handle for the run, or ``RunNotFound``."""
    return await sync_to_async(get_run)(run_id)
