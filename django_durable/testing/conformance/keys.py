"""Concurrency keys: one run per key from claim to finish, and runs ended by a sweep."""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.test import override_settings

from ...status import RunStatus
from ...storage.base import Checkpoint, ClaimedRun, Storage
from .base import JOB, OTHER_JOB, ConformanceBase, new_run


class ConcurrencyKeys(ConformanceBase):
    """Key slots, taken at claim and freed by every end of a run, a sweep's too."""

    # -- concurrency keys ---------------------------------------------------------------

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
