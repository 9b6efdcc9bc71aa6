"""Job timeouts: checked before each operation, and enforced by the sweep on stuck runs."""

import time

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from tests.testapp import jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_past_its_deadline_fails_at_its_next_step(tmp_path):
    handle = jobs.slow_with_timeout.enqueue(0.3)
    worker = WorkerProcess(tmp_path / "w.log")
    try:
        wait_until(lambda: Run.objects.get(pk=handle.id).status == RunStatus.FAILED, timeout=20)
    finally:
        assert worker.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.errors[-1]["type"] == "django_durable.exceptions.RunTimedOut"
    assert run.attempt == 1  # a timeout is not retried
    assert 2 <= executions(handle.id, "slow") < 20


def test_a_run_stuck_in_a_step_is_failed_by_the_sweep(tmp_path):
    handle = jobs.slow_with_timeout.enqueue(60)
    worker = WorkerProcess(tmp_path / "w.log", "--grace", "1")
    try:
        wait_until(lambda: executions(handle.id, "slow") == 1, what="the stuck step")
        started = time.monotonic()
        wait_until(lambda: Run.objects.get(pk=handle.id).status == RunStatus.FAILED, timeout=10)
        assert time.monotonic() - started < 5  # deadline 1 s, swept within a poll interval
    finally:
        assert worker.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.errors[-1]["type"] == "django_durable.exceptions.RunTimedOut"
    assert run.lease_token is None and run.status == RunStatus.FAILED
    assert "event=failed_deadline_passed" in worker.output
