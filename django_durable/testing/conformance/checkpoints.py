"""Fenced writes by the lease holder: checkpoints, completion, failure, release."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from ...exceptions import LeaseLost
from ...status import RunStatus, StepStatus
from ...storage.base import Checkpoint, Lease, LogRecord, Storage
from .base import JOB, ConformanceBase, new_run, step


class CheckpointsAndFencing(ConformanceBase):
    """Every write by a lease holder, and the fence that refuses a stale one."""

    def test_checkpoint_journal_logs_and_progress(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        now = timezone.now()
        log = LogRecord(attempt=1, level=20, message="hello", created_at=now)
        storage.checkpoint(
            claimed.lease,
            Checkpoint(steps=[step(1, "b"), step(0, "a")], logs=[log], progress={"done": 1}),
        )
        journal = storage.load_journal(claimed.run.id)
        assert [(s.position, s.name, s.result) for s in journal] == [
            (0, "a", {"n": 0}),
            (1, "b", {"n": 1}),
        ]
        record = storage.get_run(claimed.run.id)
        assert record is not None and record.progress == {"done": 1}

    def test_a_checkpoint_of_progress_alone_is_fenced(self, storage: Storage) -> None:
        # What ctx.progress() writes while a step runs: nothing but the run's progress.
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        storage.checkpoint(claimed.lease, Checkpoint(progress={"done": 2}))
        forged = Lease(run_id=claimed.run.id, token=uuid.uuid4(), owner="w1")
        with pytest.raises(LeaseLost):
            storage.checkpoint(forged, Checkpoint(progress={"done": 3}))
        record = storage.get_run(claimed.run.id)
        assert record is not None and record.progress == {"done": 2}
        assert storage.load_journal(claimed.run.id) == []

    def test_checkpoint_can_replace_a_failed_entry(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        failed = step(0, status=StepStatus.FAILED, result=None, error={"type": "E", "message": "m"})
        storage.checkpoint(claimed.lease, Checkpoint(steps=[failed]))
        storage.checkpoint(claimed.lease, Checkpoint(steps=[step(0, attempts=2)], replacing={0}))
        (entry,) = storage.load_journal(claimed.run.id)
        assert entry.status == StepStatus.COMPLETED and entry.attempts == 2

    def test_fencing_rejects_a_stale_token(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        forged = Lease(run_id=claimed.run.id, token=uuid.uuid4(), owner="w1")
        writes: list[Callable[[], object]] = [
            lambda: storage.checkpoint(forged, Checkpoint(steps=[step(0)])),
            lambda: storage.complete(forged, 1, Checkpoint()),
            lambda: storage.fail(forged, errors=[], checkpoint=Checkpoint(), retry_delay=None),
            lambda: storage.release(forged, Checkpoint()),
        ]
        for write in writes:
            with pytest.raises(LeaseLost):
                write()
        with pytest.raises(LeaseLost), storage.fenced_transaction(forged):
            pass
        assert storage.load_journal(claimed.run.id) == []
        record = storage.get_run(claimed.run.id)
        assert record is not None and record.status == RunStatus.RUNNING

    def test_fenced_transaction_rolls_back_with_the_body(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        with pytest.raises(RuntimeError), storage.fenced_transaction(claimed.lease) as tx:
            tx.write(Checkpoint(steps=[step(0)]))
            raise RuntimeError
        assert storage.load_journal(claimed.run.id) == []
        with storage.fenced_transaction(claimed.lease) as tx:
            tx.write(Checkpoint(steps=[step(0)]))
        assert len(storage.load_journal(claimed.run.id)) == 1

    def test_complete_is_final(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        storage.complete(claimed.lease, {"out": [1, 2]}, Checkpoint(steps=[step(0)]))
        record = storage.get_run(claimed.run.id)
        assert record is not None
        assert record.status == RunStatus.COMPLETED and record.output == {"out": [1, 2]}
        assert record.finished_at is not None
        with pytest.raises(LeaseLost):
            storage.checkpoint(claimed.lease, Checkpoint(steps=[step(1)]))

    def test_fail_for_good_or_schedule_a_retry(self, storage: Storage) -> None:
        for _ in range(3):
            storage.enqueue(new_run())
        error = {"attempt": 1, "type": "builtins.ValueError", "message": "x", "traceback": "t"}
        first, second, third = storage.claim(owner="w", job_names=[JOB], queues=None, limit=3)
        storage.fail(first.lease, errors=[error], checkpoint=Checkpoint(), retry_delay=None)
        storage.fail(second.lease, errors=[error], checkpoint=Checkpoint(), retry_delay=0)
        storage.fail(third.lease, errors=[error], checkpoint=Checkpoint(), retry_delay=3600)
        failed, again, later = (storage.get_run(c.run.id) for c in (first, second, third))
        assert failed is not None and failed.status == RunStatus.FAILED
        assert failed.errors == [error] and failed.attempt == 1
        assert again is not None and again.status == RunStatus.PENDING and again.attempt == 2
        assert later is not None and later.status == RunStatus.WAITING and later.attempt == 2
        assert later.wake_at is not None and later.wake_at > timezone.now() + timedelta(minutes=50)
        (retried,) = storage.claim(owner="w", job_names=[JOB], queues=None, limit=5)
        assert retried.run.id == second.run.id and retried.run.attempt == 2

    def test_release_returns_the_run_without_counting_a_recovery(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        claimed = self.claim_one(storage)
        storage.release(claimed.lease, Checkpoint(steps=[step(0)]))
        record = storage.get_run(claimed.run.id)
        assert record is not None
        assert record.status == RunStatus.PENDING and record.recoveries == 0
        assert len(storage.load_journal(claimed.run.id)) == 1
