"""``Storage.fenced_transaction`` for ``InMemoryStorage``: the object an atomic step,
an event wait or a child start works through while the storage's ``atomic()`` is open."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..exceptions import ChildRunMissing
from ..storage.base import Checkpoint, ChildState, Lease, NewRun
from .memory_state import Clock, Tables


class MemoryFencedTransaction:
    """The run was fenced when the transaction began; these writes join it."""

    def __init__(self, tables: Tables, clock: Clock, lease: Lease) -> None:
        self._tables = tables
        self._clock = clock
        self._lease = lease

    def write(self, checkpoint: Checkpoint) -> None:
        self._tables.write(self._tables.runs[self._lease.run_id], checkpoint)

    def take_event(self, name: str) -> tuple[bool, Any]:
        for event in self._tables.events:
            mine = event.run_id == self._lease.run_id and event.name == name
            if mine and event.consumed_at is None:
                event.consumed_at = self._clock.now()
                return True, copy.deepcopy(event.payload)
        return False, None

    def children(self, ids: Sequence[uuid.UUID]) -> list[ChildState]:
        missing = [str(child_id) for child_id in ids if child_id not in self._tables.runs]
        if missing:
            raise ChildRunMissing(
                f"child run(s) {', '.join(missing)} of run {self._lease.run_id} no longer "
                "exist: deleted while the parent was unfinished, so their outputs are lost"
            )
        rows = [self._tables.runs[child_id] for child_id in ids]
        return [
            ChildState(
                id=row.id,
                status=row.status,
                output=copy.deepcopy(row.output),
                error=copy.deepcopy(row.errors[-1]) if row.errors else None,
            )
            for row in rows
        ]

    def create_runs(self, runs: Sequence[NewRun]) -> list[uuid.UUID]:
        now = self._clock.now()
        return [self._tables.insert(new, now).id for new in runs]

    def suspend(
        self,
        checkpoint: Checkpoint,
        *,
        wake_at: datetime | None,
        waiting_for: dict[str, Any] | None,
    ) -> None:
        row = self._tables.fence(self._lease)
        self._tables.write(row, checkpoint)
        self._tables.park(row, wake_at, waiting_for)


class MemoryAtomicStep:
    """``Storage.atomic_step`` for ``InMemoryStorage``: the checkpoint renews the lease."""

    def __init__(self, tables: Tables, lease: Lease, expiry: datetime) -> None:
        self._tables = tables
        self._lease = lease
        self._expiry = expiry

    def write(self, checkpoint: Checkpoint) -> frozenset[uuid.UUID]:
        row = self._tables.runs[self._lease.run_id]
        self._tables.write(row, checkpoint)
        row.lease_expires_at = self._expiry
        return frozenset({self._lease.run_id})
