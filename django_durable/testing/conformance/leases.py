"""Leases: heartbeats, recovery of expired ones, and deadlines."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from ...exceptions import LeaseLost
from ...status import RunStatus
from ...storage.base import Checkpoint, ClaimedRun, StaleSweep, Storage
from .base import JOB, OTHER_JOB, ConformanceBase, new_run


class LeasesAndRecovery(ConformanceBase):
    """Heartbeats, the stale-lease sweep and the overdue sweep."""

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

    # -- several writes in one transaction ---------------------------------------------------

    def test_together_keeps_the_writes_whose_fence_held(self, storage: Storage) -> None:
        for _ in range(3):
            storage.enqueue(new_run())
        first, lost = storage.claim(owner="w1", job_names=[JOB], queues=None, limit=2)
        storage.release(lost.lease, Checkpoint())  # its lease is gone before the batch

        def complete_both() -> list[ClaimedRun]:
            storage.complete(first.lease, "one", Checkpoint())
            with pytest.raises(LeaseLost):
                storage.complete(lost.lease, "two", Checkpoint())
            return storage.claim(owner="w1", job_names=[JOB], queues=None, limit=2)

        claimed = {c.run.id for c in storage.together(complete_both)}
        assert lost.run.id in claimed and first.run.id not in claimed and len(claimed) == 2
        done = storage.get_run(first.run.id)
        assert done is not None and (done.status, done.output) == (RunStatus.COMPLETED, "one")

    def test_together_writes_nothing_when_it_raises(self, storage: Storage) -> None:
        storage.enqueue(new_run())
        storage.enqueue(new_run())
        first = self.claim_one(storage)

        def fails_after_writing() -> None:
            storage.complete(first.lease, "done", Checkpoint())
            storage.claim(owner="w1", job_names=[JOB], queues=None, limit=1)
            raise RuntimeError("after the writes")

        with pytest.raises(RuntimeError, match="after the writes"):
            storage.together(fails_after_writing)
        record = storage.get_run(first.run.id)
        assert record is not None and record.status == RunStatus.RUNNING
        storage.complete(first.lease, "done", Checkpoint())  # the lease still holds
        assert self.claim_one(storage).run.id != first.run.id
