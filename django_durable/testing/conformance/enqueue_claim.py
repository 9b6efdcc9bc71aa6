"""Enqueueing and claiming: idempotency keys, the caller's transaction, the claim order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from django.utils import timezone

from ...exceptions import LeaseLost
from ...status import RunStatus
from ...storage.base import Checkpoint, Storage
from .base import JOB, OTHER_JOB, ConformanceBase, new_run, step


class EnqueueAndClaim(ConformanceBase):
    """Enqueue, lookups and the claim."""

    # -- enqueue -----------------------------------------------------------------------

    def test_enqueue_and_get(self, storage: Storage) -> None:
        record, created = storage.enqueue(new_run(priority=7))
        assert created
        assert record.status == RunStatus.PENDING
        fetched = storage.get_run(record.id)
        assert fetched is not None
        assert (fetched.args, fetched.kwargs, fetched.priority) == ([1], {"x": "y"}, 7)
        assert fetched.attempt == 1 and fetched.recoveries == 0
        assert storage.get_run(uuid.uuid4()) is None

    def test_idempotency_key_returns_existing_run(self, storage: Storage) -> None:
        first, created = storage.enqueue(new_run(idempotency_key="k"))
        again, created_again = storage.enqueue(new_run(idempotency_key="k", args=[2]))
        other_job, created_other = storage.enqueue(new_run(job_name=OTHER_JOB, idempotency_key="k"))
        assert created and not created_again and created_other
        assert again.id == first.id and again.args == [1]
        assert other_job.id != first.id

    def test_duplicate_key_keeps_callers_transaction_usable(self, storage: Storage) -> None:
        with self.caller_transaction(storage):
            first, _ = storage.enqueue(new_run(idempotency_key="tx"))
            again, created = storage.enqueue(new_run(idempotency_key="tx"))
            later, _ = storage.enqueue(new_run())
        assert not created and again.id == first.id
        assert storage.get_run(later.id) is not None

    def test_enqueue_rolls_back_with_the_caller(self, storage: Storage) -> None:
        with pytest.raises(RuntimeError), self.caller_transaction(storage):
            record, _ = storage.enqueue(new_run())
            raise RuntimeError
        assert storage.get_run(record.id) is None

    def test_enqueue_many_in_order_and_with_the_caller(self, storage: Storage) -> None:
        news = [new_run(args=[n], priority=n % 3) for n in range(5)]
        news.append(new_run(args=[5], run_after=timedelta(hours=1)))
        records = storage.enqueue_many(news)
        assert [record.args for record in records] == [[n] for n in range(6)]
        assert [record.status for record in records[:5]] == [RunStatus.PENDING] * 5
        later = storage.get_run(records[5].id)
        assert later is not None and later.status == RunStatus.WAITING
        assert later.run_after is not None and later.run_after > storage.now()
        assert records[5].run_after == later.run_after  # the database's time, read back
        with pytest.raises(RuntimeError), self.caller_transaction(storage):
            gone = storage.enqueue_many([new_run(), new_run()])
            raise RuntimeError
        assert [storage.get_run(record.id) for record in gone] == [None, None]

    # -- claiming ------------------------------------------------------------------------

    def test_claim_orders_by_priority_then_run_after_then_id(self, storage: Storage) -> None:
        past = timezone.now() - timedelta(minutes=10)
        low, _ = storage.enqueue(new_run(priority=-5))
        high_late, _ = storage.enqueue(new_run(priority=10, run_after=past + timedelta(minutes=2)))
        high_early, _ = storage.enqueue(new_run(priority=10, run_after=past))
        mid_a, _ = storage.enqueue(new_run(priority=0))
        mid_b, _ = storage.enqueue(new_run(priority=0))
        assert storage.promote_due(limit=10) == 2
        claimed = storage.claim(owner="w", job_names=[JOB], queues=None, limit=10)
        got = [c.run.id for c in claimed]
        assert got == [high_early.id, high_late.id, mid_a.id, mid_b.id, low.id]
        assert all(c.run.status == RunStatus.RUNNING for c in claimed)
        assert all(c.fresh for c in claimed)

    def test_claim_honours_limit_jobs_and_queues(self, storage: Storage) -> None:
        storage.enqueue(new_run(job_name=OTHER_JOB))
        storage.enqueue(new_run(queue_name="emails"))
        default_runs = [storage.enqueue(new_run())[0].id for _ in range(3)]
        claimed = storage.claim(owner="w", job_names=[JOB], queues=["default"], limit=2)
        assert [c.run.id for c in claimed] == default_runs[:2]
        assert storage.claim(owner="w", job_names=["nobody"], queues=None, limit=5) == []
        emails = storage.claim(owner="w", job_names=[JOB], queues=["emails"], limit=5)
        assert [c.run.queue_name for c in emails] == ["emails"]
        rest = storage.claim(owner="w", job_names=[JOB], queues=None, limit=5)
        assert [c.run.id for c in rest] == default_runs[2:]
        assert storage.unclaimable_job_names([JOB]) == {OTHER_JOB: 1}

    def test_claimed_run_is_not_claimed_again_and_gets_a_new_token(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        first = self.claim_one(storage)
        assert storage.claim(owner="w2", job_names=[JOB], queues=None, limit=1) == []
        storage.release(first.lease, Checkpoint())
        second = self.claim_one(storage, owner="w2")
        assert second.run.id == first.run.id
        assert second.lease.token != first.lease.token
        assert not second.fresh
        with pytest.raises(LeaseLost):
            storage.checkpoint(first.lease, Checkpoint(steps=[step(0)]))

    def test_future_run_after_waits_until_due(self, storage: Storage) -> None:
        record, _ = storage.enqueue(new_run(run_after=timezone.now() + timedelta(hours=1)))
        assert record.status == RunStatus.WAITING
        assert storage.promote_due(limit=10) == 0
        assert storage.claim(owner="w", job_names=[JOB], queues=None, limit=1) == []

    def test_has_claimable_runs_is_the_claims_view_of_the_database(self, storage: Storage) -> None:
        def claimable(job_names: Sequence[str] = (JOB,), queues: list[str] | None = None) -> bool:
            return storage.has_claimable_runs(job_names=list(job_names), queues=queues)

        assert not claimable()
        storage.enqueue(new_run(run_after=timezone.now() + timedelta(hours=1)))
        assert not claimable()  # waiting, not due
        storage.enqueue(new_run(queue_name="emails"))
        assert claimable() and claimable(queues=["emails"])
        assert not claimable(queues=["default"]) and not claimable(job_names=[OTHER_JOB])
        assert not claimable(job_names=[])
        self.claim_one(storage)
        assert not claimable()  # running runs are not claimable
        storage.enqueue(new_run(concurrency_key="k"))
        storage.enqueue(new_run(concurrency_key="k"))
        holder = self.claim_one(storage)
        assert not claimable()  # pending, but its key is held
        storage.complete(holder.lease, None, Checkpoint())
        assert claimable()
        sibling = self.claim_one(storage)
        storage.suspend(sibling.lease, Checkpoint(), wake_at=None, waiting_for={"event": "e"})
        assert not claimable()  # waits for an event, keeping its key
        storage.send_event(sibling.run.id, "e", None)
        assert claimable()
        woken = self.claim_one(storage)
        # Its wake time passed by the database clock: claimable before a sweep promotes it.
        storage.suspend(woken.lease, Checkpoint(), wake_at=storage.now() - timedelta(seconds=1))
        assert claimable()
        assert storage.promote_due(limit=10) == 1
        assert self.claim_one(storage).run.id == sibling.run.id
        assert not claimable()
