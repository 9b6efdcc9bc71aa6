"""Conformance scenarios of ``Storage.fork`` (``fork_run``), mixed into
:class:`~django_durable.testing.conformance.StorageConformance`."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ...exceptions import RunNotFound
from ...status import RunStatus, StepKind, StepStatus
from ...storage.base import Checkpoint, ClaimedRun, NewRun, Storage
from .base import new_run, step

JOB = "conformance.fork"
CHILD_JOB = "conformance.fork_child"


def _new(**overrides: Any) -> NewRun:
    return new_run(**({"job_name": JOB, "priority": 3} | overrides))


def _claim(storage: Storage, job_name: str = JOB) -> ClaimedRun:
    (claimed,) = storage.claim(owner="fork", job_names=[job_name], queues=None, limit=1)
    return claimed


def _fork(storage: Storage, run_id: uuid.UUID, from_step: int | str | None = None) -> Any:
    return storage.fork(run_id, from_step=from_step, args=[2], kwargs={"x": "z"})


class ForkConformance:
    """A fork is a new run keeping the journal before the fork point; the old run stays."""

    def _failed_at_two(self, storage: Storage) -> uuid.UUID:
        """A run whose journal is: 0 "a" completed, 1 "b" completed, 2 "c" failed."""
        record, _ = storage.enqueue(_new())
        claimed = _claim(storage)
        failure = {"type": "RuntimeError", "message": "bug"}
        steps = [
            step(0, "a"),
            step(1, "b"),
            step(2, "c", status=StepStatus.FAILED, error=failure),
        ]
        storage.fail(
            claimed.lease,
            errors=[{"attempt": 1, **failure, "traceback": ""}],
            checkpoint=Checkpoint(steps=steps),
            retry_delay=None,
        )
        return record.id

    def test_fork_keeps_the_journal_before_the_failed_step(self, storage: Storage) -> None:
        old_id = self._failed_at_two(storage)
        old_before = storage.get_run(old_id)
        fork = _fork(storage, old_id)
        assert fork.forked_from == old_id and fork.id != old_id
        assert (fork.job_name, fork.priority, fork.status, fork.attempt) == (
            JOB,
            3,
            RunStatus.PENDING,
            1,
        )
        assert (fork.args, fork.kwargs, fork.output, fork.errors) == ([2], {"x": "z"}, None, [])
        kept = storage.load_journal(fork.id)
        assert [(e.position, e.name, e.status, e.result) for e in kept] == [
            (0, "a", StepStatus.COMPLETED, {"n": 0}),
            (1, "b", StepStatus.COMPLETED, {"n": 1}),
        ]
        assert all(entry.run_attempt == 1 for entry in kept)
        assert storage.get_run(old_id) == old_before  # untouched
        assert len(storage.load_journal(old_id)) == 3
        claimed = _claim(storage)
        # Never a fresh claim: the worker must load the copied journal.
        assert claimed.run.id == fork.id and not claimed.fresh
        assert claimed.run.forked_from == old_id

    def test_fork_from_a_position_or_a_name(self, storage: Storage) -> None:
        old_id = self._failed_at_two(storage)
        assert storage.load_journal(_fork(storage, old_id, 0).id) == []
        assert [e.name for e in storage.load_journal(_fork(storage, old_id, "b").id)] == ["a"]
        assert len(storage.load_journal(_fork(storage, old_id, 3).id)) == 3  # all kept

    def test_refusals_write_nothing(self, storage: Storage) -> None:
        old_id = self._failed_at_two(storage)
        pending, _ = storage.enqueue(_new(job_name=CHILD_JOB))
        with pytest.raises(ValueError, match="out of range"):
            _fork(storage, old_id, 4)
        with pytest.raises(ValueError, match="no operation named 'zz'"):
            _fork(storage, old_id, "zz")
        with pytest.raises(TypeError, match="from_step"):
            _fork(storage, old_id, 1.0)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="pending, not finished"):
            _fork(storage, pending.id)
        with pytest.raises(RunNotFound):
            _fork(storage, uuid.uuid4())
        assert storage.claim(owner="w", job_names=[JOB], queues=None, limit=5) == []

    def test_events_the_kept_part_consumed_stay_consumed(self, storage: Storage) -> None:
        record, _ = storage.enqueue(_new())
        for payload in ("e1", "e2", "e3"):
            storage.send_event(record.id, "go", payload)
        storage.send_event(record.id, "other", "o1")
        claimed = _claim(storage)
        with storage.fenced_transaction(claimed.lease) as tx:
            first, second = tx.take_event("go"), tx.take_event("go")
        assert (first, second) == ((True, "e1"), (True, "e2"))
        waits = [
            step(0, "go", kind=StepKind.EVENT, result={"payload": "e1"}),
            step(1, "go", kind=StepKind.EVENT, result={"payload": "e2"}),
        ]
        storage.complete(claimed.lease, "done", Checkpoint(steps=waits))
        fork = _fork(storage, record.id, 1)  # keeps the wait that took e1
        again = _claim(storage)
        assert again.run.id == fork.id
        with storage.fenced_transaction(again.lease) as tx:
            # e1 stays consumed; e2 and e3 are delivered again, oldest first; "other" too.
            taken = [tx.take_event("go") for _ in range(3)]
            assert tx.take_event("other") == (True, "o1")
        assert taken == [(True, "e2"), (True, "e3"), (False, None)]

    def test_children_are_reused_and_must_have_finished(self, storage: Storage) -> None:
        parent, _ = storage.enqueue(_new())
        claimed = _claim(storage)
        with storage.fenced_transaction(claimed.lease) as tx:
            done_id, running_id = tx.create_runs(
                [_new(job_name=CHILD_JOB, parent_id=parent.id) for _ in range(2)]
            )
        child = _claim(storage, CHILD_JOB)
        storage.complete(child.lease, 4, Checkpoint())
        steps = [
            step(0, CHILD_JOB, kind=StepKind.CHILDREN, result={"children": [str(done_id)]}),
            step(1, CHILD_JOB, kind=StepKind.CHILDREN, result={"children": [str(running_id)]}),
        ]
        storage.complete(claimed.lease, "done", Checkpoint(steps=steps))  # children unawaited
        with pytest.raises(ValueError, match=f"child run {running_id}.*is pending"):
            _fork(storage, parent.id, 2)
        fork = _fork(storage, parent.id, 1)  # reuses the completed child only
        kept = storage.load_journal(fork.id)
        assert [entry.result for entry in kept] == [{"children": [str(done_id)]}]
        reused = storage.get_run(done_id)
        assert reused is not None and reused.parent_id == parent.id
        # Fork from failure: the child that has not completed is started again.
        assert len(storage.load_journal(_fork(storage, parent.id).id)) == 1
