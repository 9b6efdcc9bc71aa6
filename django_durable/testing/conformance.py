"""The storage conformance suite: the same scenarios against any ``Storage``.

Subclass :class:`StorageConformance` in a pytest module, mark it for database access
with transactions, and return the storage under test from ``make_storage``::

    @pytest.mark.django_db(transaction=True)
    class TestMyStorage(StorageConformance):
        def make_storage(self):
            return MyStorage()

A storage with transactions of its own (``InMemoryStorage``) needs no database mark and
overrides ``caller_transaction`` to return its own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from ..exceptions import LeaseLost, RunCancelled, RunNotFound
from ..status import RunStatus, StepKind, StepStatus
from ..storage.base import (
    Checkpoint,
    ClaimedRun,
    Lease,
    LogRecord,
    NewRun,
    StaleSweep,
    StepRecord,
    Storage,
)
from .conformance_fork import ForkConformance

JOB = "conformance.job"
OTHER_JOB = "conformance.other"


def new_run(**overrides: Any) -> NewRun:
    values: dict[str, Any] = {
        "job_name": JOB,
        "queue_name": "default",
        "priority": 0,
        "args": [1],
        "kwargs": {"x": "y"},
    }
    values.update(overrides)
    return NewRun(**values)


def step(position: int, name: str = "s", **overrides: Any) -> StepRecord:
    values: dict[str, Any] = {
        "position": position,
        "kind": StepKind.STEP,
        "name": name,
        "status": StepStatus.COMPLETED,
        "result": {"n": position},
    }
    values.update(overrides)
    return StepRecord(**values)


class StorageConformance(ForkConformance):
    """Every ``Storage`` method, its ordering, fencing and recovery rules."""

    def make_storage(self) -> Storage:
        raise NotImplementedError

    @pytest.fixture
    def storage(self) -> Storage:
        return self.make_storage()

    def caller_transaction(self, storage: Storage) -> AbstractContextManager[object]:
        """A transaction of the enqueuer's, on the storage's database alias if it has one."""
        return transaction.atomic(using=getattr(storage, "alias", None))

    def claim_one(self, storage: Storage, owner: str = "w1", **kwargs: Any) -> ClaimedRun:
        claimed = storage.claim(owner=owner, job_names=[JOB], queues=None, limit=1, **kwargs)
        assert len(claimed) == 1
        return claimed[0]

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

    # -- fenced writes ---------------------------------------------------------------------

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

    # -- heartbeats and recovery -------------------------------------------------------------

    def test_heartbeat_renews_only_the_owners_leases(self, storage: Storage) -> None:
        for _ in range(3):
            storage.enqueue(new_run())
        mine = [c.run.id for c in storage.claim(owner="w1", job_names=[JOB], queues=None, limit=2)]
        (theirs,) = [
            c.run.id for c in storage.claim(owner="w2", job_names=[JOB], queues=None, limit=1)
        ]
        assert storage.heartbeat("w1", mine).renewed == set(mine)
        assert storage.heartbeat("w1", [*mine, theirs]).renewed == set(mine)
        assert storage.heartbeat("w1", mine[:1]).renewed == {mine[0]}
        assert storage.heartbeat("w2", [theirs]).renewed == {theirs}
        assert storage.heartbeat("w3", [*mine, theirs]).renewed == set()
        assert storage.heartbeat("w1", []).renewed == set()
        storage.cancel(mine[0])
        assert storage.heartbeat("w1", mine).cancel_requested == {mine[0]}

    def test_heartbeat_does_not_renew_a_lease_taken_over(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        storage.enqueue(new_run())
        with override_settings(DURABLE={"STALE_AFTER": 1.0}):
            frozen, alive = storage.claim(owner="w1", job_names=[JOB], queues=None, limit=2)
            time.sleep(1.2)  # both leases expire: w1 was frozen
            assert storage.heartbeat("w1", [alive.run.id]).renewed == {alive.run.id}
            assert storage.recover_stale(max_recoveries=5, limit=10).requeued == [frozen.run.id]
        taker = self.claim_one(storage, owner="w2")
        assert taker.run.id == frozen.run.id
        # w1 wakes up: only the lease the database renewed is reported, never the other.
        beat = storage.heartbeat("w1", [frozen.run.id, alive.run.id])
        assert beat.renewed == {alive.run.id}
        storage.complete(taker.lease, "done", Checkpoint())
        assert storage.heartbeat("w1", [frozen.run.id]).renewed == set()
        record = storage.get_run(frozen.run.id)
        assert record is not None and record.status == RunStatus.COMPLETED

    def test_stale_lease_is_recovered_and_fenced_out(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        # Long enough that a loaded machine still sweeps before the lease expires.
        with override_settings(DURABLE={"STALE_AFTER": 1.0}):
            dead = self.claim_one(storage, owner="dead")
            assert storage.recover_stale(max_recoveries=5, limit=10).requeued == []
            time.sleep(1.2)
            sweep = storage.recover_stale(max_recoveries=5, limit=10)
        assert sweep.requeued == [dead.run.id] and sweep.failed == []
        record = storage.get_run(dead.run.id)
        assert record is not None and record.recoveries == 1 and record.attempt == 1
        alive = self.claim_one(storage, owner="alive")
        assert alive.run.id == dead.run.id
        with pytest.raises(LeaseLost):
            storage.complete(dead.lease, None, Checkpoint())
        storage.complete(alive.lease, "ok", Checkpoint())

    def test_heartbeat_keeps_a_lease_from_going_stale(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        # Four beats outlast STALE_AFTER; each comes well inside it, even on a loaded machine.
        with override_settings(DURABLE={"STALE_AFTER": 1.5}):
            claimed = self.claim_one(storage, owner="w1")
            for _ in range(4):
                time.sleep(0.4)
                assert storage.heartbeat("w1", [claimed.run.id]).renewed == {claimed.run.id}
            assert storage.recover_stale(max_recoveries=5, limit=10).requeued == []

    def test_recovery_limit_fails_the_run(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        with override_settings(DURABLE={"STALE_AFTER": 0.1}):
            claimed = self.claim_one(storage)
            time.sleep(0.3)
            sweep = storage.recover_stale(max_recoveries=0, limit=10)
        assert sweep.failed == [claimed.run.id] and sweep.requeued == []
        record = storage.get_run(claimed.run.id)
        assert record is not None and record.status == RunStatus.FAILED
        assert record.errors[-1]["type"] == "django_durable.WorkerLost"

    def test_promote_due_wakes_only_due_runs(self, storage: Storage) -> None:
        due, _ = storage.enqueue(new_run(run_after=timezone.now() - timedelta(seconds=1)))
        storage.enqueue(new_run(run_after=timezone.now() + timedelta(hours=1)))
        assert storage.promote_due(limit=10) == 1
        assert storage.promote_due(limit=10) == 0
        record = storage.get_run(due.id)
        assert record is not None and record.status == RunStatus.PENDING

    # -- concurrency keys ---------------------------------------------------------------

    def claim_all(self, storage: Storage, owner: str = "w") -> list[ClaimedRun]:
        return storage.claim(owner=owner, job_names=[JOB], queues=None, limit=10)

    def test_one_run_per_concurrency_key_from_claim_to_finish(self, storage: Storage) -> None:
        first, _ = storage.enqueue(new_run(concurrency_key="k"))
        second, _ = storage.enqueue(new_run(concurrency_key="k"))
        other, _ = storage.enqueue(new_run(concurrency_key="other"))
        free, _ = storage.enqueue(new_run())
        claimed = self.claim_all(storage)
        assert [c.run.id for c in claimed] == [first.id, other.id, free.id]
        assert claimed[0].lease.concurrency_key == "k"
        assert self.claim_all(storage, owner="w2") == []
        record = storage.get_run(second.id)
        assert record is not None and record.status == RunStatus.PENDING
        storage.complete(claimed[0].lease, None, Checkpoint())
        (next_run,) = self.claim_all(storage, owner="w2")
        assert next_run.run.id == second.id

    def test_a_retrying_run_keeps_its_key(self, storage: Storage) -> None:
        first, _ = storage.enqueue(new_run(concurrency_key="k"))
        second, _ = storage.enqueue(new_run(concurrency_key="k"))
        (claimed,) = self.claim_all(storage)
        storage.fail(claimed.lease, errors=[], checkpoint=Checkpoint(), retry_delay=0.2)
        assert self.claim_all(storage) == []  # first waits for its retry and keeps the key
        time.sleep(0.4)
        storage.promote_due(limit=10)
        (again,) = self.claim_all(storage)
        assert again.run.id == first.id
        storage.fail(again.lease, errors=[], checkpoint=Checkpoint(), retry_delay=None)
        (then,) = self.claim_all(storage)
        assert then.run.id == second.id

    def test_a_released_run_reclaims_its_own_key(self, storage: Storage) -> None:
        first, _ = storage.enqueue(new_run(concurrency_key="k"))
        storage.enqueue(new_run(concurrency_key="k"))
        (claimed,) = self.claim_all(storage)
        storage.release(claimed.lease, Checkpoint())
        (again,) = self.claim_all(storage)
        assert again.run.id == first.id

    def test_recovery_failure_frees_the_key(self, storage: Storage) -> None:
        storage.enqueue(new_run(concurrency_key="k"))
        second, _ = storage.enqueue(new_run(concurrency_key="k"))
        with override_settings(DURABLE={"STALE_AFTER": 0.1}):
            self.claim_all(storage, owner="dead")
            time.sleep(0.3)
            assert len(storage.recover_stale(max_recoveries=0, limit=10).failed) == 1
        (claimed,) = self.claim_all(storage)
        assert claimed.run.id == second.id

    # -- runs ended by a sweep -------------------------------------------------------------

    def keyed_parent_with_a_child(
        self, storage: Storage, **claim_kwargs: Any
    ) -> tuple[ClaimedRun, uuid.UUID, uuid.UUID]:
        """A claimed parent holding key "k" with a pending child, and a run queued for "k"."""
        parent, _ = storage.enqueue(new_run(concurrency_key="k"))
        queued, _ = storage.enqueue(new_run(concurrency_key="k"))
        claimed = self.claim_one(storage, owner="dead", **claim_kwargs)
        assert claimed.run.id == parent.id
        with storage.fenced_transaction(claimed.lease) as tx:
            (child_id,) = tx.create_runs([new_run(job_name=OTHER_JOB, parent_id=parent.id)])
        return claimed, child_id, queued.id

    def assert_ended_with_its_children_and_key(
        self, storage: Storage, child_id: uuid.UUID, queued_id: uuid.UUID
    ) -> None:
        child = storage.get_run(child_id)
        assert child is not None and child.status == RunStatus.CANCELLED
        (next_run,) = self.claim_all(storage)
        assert next_run.run.id == queued_id

    def test_a_parent_out_of_recoveries_ends_its_children_and_frees_its_key(
        self, storage: Storage
    ) -> None:
        with override_settings(DURABLE={"STALE_AFTER": 0.1}):
            claimed, child_id, queued_id = self.keyed_parent_with_a_child(storage)
            time.sleep(0.3)
            assert storage.recover_stale(max_recoveries=0, limit=10).failed == [claimed.run.id]
        self.assert_ended_with_its_children_and_key(storage, child_id, queued_id)

    def test_a_parent_past_its_deadline_ends_its_children_and_frees_its_key(
        self, storage: Storage
    ) -> None:
        with override_settings(DURABLE={"STALE_AFTER": 0.1}):
            claimed, child_id, queued_id = self.keyed_parent_with_a_child(
                storage, timeouts={JOB: 0.1}
            )
            time.sleep(0.3)  # past the deadline, and its worker stopped heartbeating
            assert storage.fail_overdue(limit=10) == [claimed.run.id]
        self.assert_ended_with_its_children_and_key(storage, child_id, queued_id)

    # -- deadlines -----------------------------------------------------------------------

    def test_claim_sets_deadlines_and_the_sweep_fails_overdue_runs(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        storage.enqueue(new_run(job_name=OTHER_JOB))
        with override_settings(DURABLE={"STALE_AFTER": 0.3}):
            claimed = storage.claim(
                owner="w", job_names=[JOB, OTHER_JOB], queues=None, limit=5, timeouts={JOB: 0.2}
            )
            timed = next(c for c in claimed if c.run.job_name == JOB)
            untimed = next(c for c in claimed if c.run.job_name == OTHER_JOB)
            assert timed.run.deadline is not None and untimed.run.deadline is None
            assert storage.fail_overdue(limit=10) == []
            time.sleep(0.5)  # past the deadline, and the worker stopped heartbeating
            assert storage.fail_overdue(limit=10) == [timed.run.id]
        record = storage.get_run(timed.run.id)
        assert record is not None and record.status == RunStatus.FAILED
        assert record.errors[-1]["type"] == "django_durable.exceptions.RunTimedOut"
        with pytest.raises(LeaseLost):  # the stuck worker's late writes are refused
            storage.complete(timed.lease, "late", Checkpoint())
        assert storage.heartbeat("w", [untimed.run.id]).renewed == {untimed.run.id}
        storage.complete(untimed.lease, "fine", Checkpoint())

    def test_the_stale_sweep_leaves_a_run_past_its_deadline_to_fail_overdue(
        self, storage: Storage
    ) -> None:
        storage.enqueue(new_run())
        with override_settings(DURABLE={"STALE_AFTER": 0.1}):
            (claimed,) = storage.claim(
                owner="w", job_names=[JOB], queues=None, limit=5, timeouts={JOB: 0.1}
            )
            time.sleep(0.3)  # its lease expired, its deadline passed: a timeout, not a recovery
            assert storage.recover_stale(max_recoveries=5, limit=10) == StaleSweep(
                requeued=[], failed=[], cancelled=[]
            )
            assert storage.fail_overdue(limit=10) == [claimed.run.id]
        record = storage.get_run(claimed.run.id)
        assert record is not None and record.status == RunStatus.FAILED
        assert record.recoveries == 0

    def test_an_overdue_run_keeps_its_key_while_its_worker_holds_the_lease(
        self, storage: Storage
    ) -> None:
        first, _ = storage.enqueue(new_run(concurrency_key="k"))
        second, _ = storage.enqueue(new_run(concurrency_key="k"))
        with override_settings(DURABLE={"STALE_AFTER": 2.0}):
            (claimed,) = storage.claim(
                owner="w", job_names=[JOB], queues=None, limit=5, timeouts={JOB: 0.1}
            )
            assert claimed.run.id == first.id
            time.sleep(0.3)  # past the deadline; the worker's lease is still live
            assert storage.fail_overdue(limit=10) == []
            assert storage.claim(owner="w2", job_names=[JOB], queues=None, limit=5) == []
            record = storage.get_run(first.id)
            assert record is not None and record.status == RunStatus.RUNNING
            time.sleep(2.0)  # the worker stops heartbeating: stuck, its lease expires
            assert storage.fail_overdue(limit=10) == [first.id]
        (next_run,) = storage.claim(owner="w2", job_names=[JOB], queues=None, limit=5)
        assert next_run.run.id == second.id

    # -- waiting, events, children, cancel and retry ---------------------------------------

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

    def test_cancel_finish_cancelled_and_retry(self, storage: Storage) -> None:
        pending, _ = storage.enqueue(new_run())
        running, _ = storage.enqueue(new_run())
        storage.cancel(pending.id)
        claimed = self.claim_one(storage)
        assert claimed.run.id == running.id
        storage.cancel(running.id)
        with pytest.raises(RunCancelled):  # journal writes see the cancel request
            storage.checkpoint(claimed.lease, Checkpoint(steps=[step(0)]))
        storage.finish_cancelled(claimed.lease, Checkpoint(steps=[step(0)]))
        for run_id in (pending.id, running.id):
            record = storage.get_run(run_id)
            assert record is not None and record.status == RunStatus.CANCELLED
        storage.retry(running.id)
        retried = storage.get_run(running.id)
        assert retried is not None
        assert (retried.status, retried.attempt, retried.cancel_requested) == (
            RunStatus.PENDING,
            2,
            False,
        )
        assert len(storage.load_journal(running.id)) == 1
        with pytest.raises(ValueError):
            storage.retry(running.id)

    def test_restart_clears_the_journal_and_redelivers_events(self, storage: Storage) -> None:
        record, _ = storage.enqueue(new_run())
        storage.send_event(record.id, "go", {"n": 1})
        claimed = self.claim_one(storage)
        with storage.fenced_transaction(claimed.lease) as tx:
            assert tx.take_event("go") == (True, {"n": 1})
            tx.write(Checkpoint(steps=[step(0)]))
        with pytest.raises(ValueError):  # a running run is not restarted under its worker
            storage.restart(record.id)
        storage.complete(claimed.lease, "done", Checkpoint(steps=[step(1)]))
        storage.restart(record.id)
        restarted = storage.get_run(record.id)
        assert restarted is not None
        assert (restarted.status, restarted.attempt, restarted.output) == (
            RunStatus.PENDING,
            2,
            None,
        )
        assert storage.load_journal(record.id) == []
        again = self.claim_one(storage)
        with storage.fenced_transaction(again.lease) as tx:
            assert tx.take_event("go") == (True, {"n": 1})
        with pytest.raises(RunNotFound):
            storage.restart(uuid.uuid4())
