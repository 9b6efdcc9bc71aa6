"""Waiting: the database clock, sleeps, events and child runs."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from ...exceptions import LeaseLost, RunNotFound
from ...status import RunStatus, StepKind, StepStatus
from ...storage.base import Checkpoint, Storage
from .base import JOB, OTHER_JOB, ConformanceBase, new_run, step


class WaitsEventsAndChildren(ConformanceBase):
    """Suspending a run and what wakes it."""

    def test_now_is_the_database_clock(self, storage: Storage) -> None:
        now = storage.now()
        assert now.tzinfo is not None
        assert abs((now - timezone.now()).total_seconds()) < 60

    def test_suspend_parks_the_run_until_its_wake_time(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        waiting = step(0, kind=StepKind.SLEEP, status=StepStatus.WAITING)
        storage.suspend(
            claimed.lease,
            Checkpoint(steps=[waiting]),
            wake_at=storage.now() + timedelta(seconds=0.2),
        )
        record = storage.get_run(claimed.run.id)
        assert record is not None and record.status == RunStatus.WAITING
        assert storage.claim(owner="w", job_names=[JOB], queues=None, limit=1) == []
        with pytest.raises(LeaseLost):
            storage.checkpoint(claimed.lease, Checkpoint())
        time.sleep(0.4)
        assert storage.promote_due(limit=10) == 1
        assert self.claim_one(storage).run.id == claimed.run.id

    def test_events_wake_a_run_waiting_for_them(self, storage: Storage) -> None:
        record, _ = storage.enqueue(new_run())
        storage.send_event(record.id, "early", {"n": 1})
        claimed = self.claim_one(storage)
        with storage.fenced_transaction(claimed.lease) as tx:
            assert tx.take_event("early") == (True, {"n": 1})
            assert tx.take_event("early") == (False, None)
            tx.suspend(Checkpoint(), wake_at=None, waiting_for={"event": "late"})
        storage.send_event(record.id, "other", None)
        parked = storage.get_run(record.id)
        assert parked is not None and parked.status == RunStatus.WAITING
        storage.send_event(record.id, "late", "x")
        woken = storage.get_run(record.id)
        assert woken is not None and woken.status == RunStatus.PENDING
        with pytest.raises(RunNotFound):
            storage.send_event(uuid.uuid4(), "late", None)

    def test_children_are_created_and_wake_their_waiting_parent(self, storage: Storage) -> None:
        parent, _ = storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        with storage.fenced_transaction(claimed.lease) as tx:
            (child_id,) = tx.create_runs([new_run(job_name=OTHER_JOB, parent_id=parent.id)])
            (state,) = tx.children([child_id])
            assert state.status == RunStatus.PENDING
            tx.suspend(Checkpoint(), wake_at=None, waiting_for={"children": [str(child_id)]})
        (child,) = storage.claim(owner="w", job_names=[OTHER_JOB], queues=None, limit=1)
        assert child.run.parent_id == parent.id
        storage.complete(child.lease, 42, Checkpoint())
        woken = storage.get_run(parent.id)
        assert woken is not None and woken.status == RunStatus.PENDING
