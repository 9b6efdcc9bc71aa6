"""The worker's own judgement of its leases, checked before each operation."""

import time
import uuid

import pytest

from django_durable.exceptions import LeaseLost, WorkerStopping
from django_durable.held_runs import Held
from django_durable.storage.base import Lease
from django_durable.worker import Worker


def test_no_operation_starts_once_the_lease_may_have_expired(settings):
    settings.DURABLE = {"STALE_AFTER": 5}
    worker = Worker(jobs={})
    lease = Lease(run_id=uuid.uuid4(), token=uuid.uuid4(), owner=worker.worker_id)
    worker._held.runs[lease.run_id] = Held(lease=lease, renewed_at=time.monotonic() - 6)
    guard = worker._held.guard(lease.run_id)
    with pytest.raises(LeaseLost, match="no heartbeat succeeded for 5"):
        guard()
    worker._held.runs[lease.run_id].renewed_at = time.monotonic()
    guard()  # renewed: the job may go on
    worker.stop()
    with pytest.raises(WorkerStopping):
        guard()
