"""Operations on a run from outside: cancel, retry and restart."""

from __future__ import annotations

import uuid

import pytest

from ...exceptions import RunCancelled, RunNotFound
from ...status import RunStatus
from ...storage.base import Checkpoint, Storage
from .base import ConformanceBase, new_run, step


class CancelRetryRestart(ConformanceBase):
    """``cancel``, ``finish_cancelled``, ``retry`` and ``restart``."""

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
