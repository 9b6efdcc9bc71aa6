"""Job timeouts: checked before each operation, and enforced by the sweep on stuck runs."""

import signal
import time

import pytest
from django.db import connection

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


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="a worker frozen inside a write transaction holds SQLite's only write lock",
)
def test_a_run_stuck_in_a_step_is_failed_by_the_sweep(tmp_path):
    handle = jobs.slow_with_timeout.enqueue(60)
    stuck = WorkerProcess(tmp_path / "stuck.log", "--grace", "1")
    sweeper = None
    try:
        wait_until(lambda: executions(handle.id, "slow") == 1, what="the stuck step")
        stuck.process.send_signal(signal.SIGSTOP)  # hung: it stops heartbeating too
        started = time.monotonic()
        sweeper = WorkerProcess(tmp_path / "sweeper.log")
        wait_until(lambda: Run.objects.get(pk=handle.id).status == RunStatus.FAILED, timeout=30)
        # deadline 1 s, then the lease expires (STALE_AFTER 2 s), then a sweep: not a
        # recovery that would run the step again.
        assert time.monotonic() - started < 20
    finally:
        stuck.process.send_signal(signal.SIGCONT)
        assert stuck.terminate() == 0
        if sweeper is not None:
            assert sweeper.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.errors[-1]["type"] == "django_durable.exceptions.RunTimedOut"
    assert run.lease_token is None and run.status == RunStatus.FAILED and run.recoveries == 0
    assert executions(handle.id, "slow") == 1
    assert "event=failed_deadline_passed" in sweeper.output


def test_a_live_worker_fails_its_own_overdue_run_when_the_step_returns(tmp_path):
    handle = jobs.slow_with_timeout.enqueue(4)
    worker = WorkerProcess(tmp_path / "w.log")
    try:
        wait_until(lambda: executions(handle.id, "slow") == 1, what="the long step")
        time.sleep(2)  # past the deadline; the worker still heartbeats
        assert Run.objects.get(pk=handle.id).status == RunStatus.RUNNING
        wait_until(lambda: Run.objects.get(pk=handle.id).status == RunStatus.FAILED, timeout=30)
    finally:
        assert worker.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.errors[-1]["type"] == "django_durable.exceptions.RunTimedOut"
    assert executions(handle.id, "slow") == 1 and run.recoveries == 0
    assert "event=failed_deadline_passed" not in worker.output
