"""cancel_run against a real worker: the running run stops at its next step
(tests/integration/test_cancel_retry.py has the in-process cases)."""

import pytest

from django_durable import RunStatus, cancel_run
from django_durable.models import Run
from tests.integration.test_cancel_retry import status
from tests.testapp import jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until


@pytest.mark.django_db(transaction=True)
def test_a_running_run_stops_at_its_next_step_when_cancelled(tmp_path):
    handle = jobs.many_slow_steps.enqueue(steps=100, pause=0.1)
    worker = WorkerProcess(tmp_path / "w.log", stale_after=1.5)
    try:
        wait_until(lambda: executions(handle.id, "slow") >= 3, what="the run to be under way")
        assert cancel_run(handle.id).status == RunStatus.RUNNING  # asked, not yet stopped
        wait_until(lambda: status(handle.id) == RunStatus.CANCELLED, timeout=15)
    finally:
        assert worker.terminate() == 0
    assert "outcome=cancelled" in worker.output
    assert executions(handle.id, "slow") < 100
    run = Run.objects.get(pk=handle.id)
    assert run.lease_token is None and run.finished_at is not None
