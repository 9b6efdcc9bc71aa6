"""What every conformance scenario shares: the storage fixture, runs to enqueue, claims."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import pytest
from django.db import transaction

from ...status import StepKind, StepStatus
from ...storage.base import ClaimedRun, NewRun, StepRecord, Storage

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


class ConformanceBase:
    """The storage under test and the helpers every scenario uses."""

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

    def claim_all(self, storage: Storage, owner: str = "w") -> list[ClaimedRun]:
        return storage.claim(owner=owner, job_names=[JOB], queues=None, limit=10)
