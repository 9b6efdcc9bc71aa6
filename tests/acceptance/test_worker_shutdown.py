"""Graceful shutdown, --grace, a second signal and --max-runs, with real processes."""

import signal
import time

import pytest

from django_durable import RunStatus
from django_durable.models import Run, Step
from tests.testapp import async_jobs, jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def run_of(handle):
    return Run.objects.get(pk=handle.id)


# The same three steps as a plain job and as an async def job (whose step 2 is a plain
# function on a thread of its own).
THREE_STEPS = pytest.mark.parametrize(
    "three_steps", [jobs.three_steps, async_jobs.async_steps], ids=["sync", "async"]
)


@THREE_STEPS
def test_sigterm_lets_the_step_finish_releases_the_run_and_exits_0(tmp_path, three_steps):
    handle = three_steps.enqueue(pause_in_step_2=2)
    worker = WorkerProcess(tmp_path / "a.log", "--grace", "20")
    try:
        wait_until(lambda: executions(handle.id, "step-2") == 1, what="step 2 to start")
        worker.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
    finally:
        code = worker.wait(20)
    assert code == 0, worker.output
    assert time.monotonic() - stopped_at < 20
    run = run_of(handle)
    assert run.status == RunStatus.PENDING and run.recoveries == 0
    assert list(Step.objects.filter(run=run).values_list("name", flat=True)) == [
        "step-1",
        "step-2",
    ]
    assert "outcome=released reason=worker_stopping" in worker.output

    finisher = WorkerProcess(tmp_path / "b.log", "--burst")
    assert finisher.wait() == 0, finisher.output
    assert run_of(handle).status == RunStatus.COMPLETED
    assert [executions(handle.id, s) for s in ("step-1", "step-2", "step-3")] == [1, 1, 1]


@THREE_STEPS
def test_a_step_outlasting_the_grace_period_is_released_anyway(tmp_path, three_steps):
    handle = three_steps.enqueue(pause_in_step_2=120)
    worker = WorkerProcess(tmp_path / "a.log", "--grace", "1")
    try:
        wait_until(lambda: executions(handle.id, "step-2") == 1, what="step 2 to start")
        worker.process.send_signal(signal.SIGTERM)
    finally:
        code = worker.wait(15)
    assert code == 0, worker.output
    assert "event=released_after_grace" in worker.output
    run = run_of(handle)
    assert run.status == RunStatus.PENDING and run.recoveries == 0
    # Step 1's checkpoint was committed before step 2 began, so it never runs again.
    finisher = WorkerProcess(tmp_path / "b.log", "--burst")
    assert finisher.wait() == 0, finisher.output
    assert run_of(handle).status == RunStatus.COMPLETED
    assert [executions(handle.id, s) for s in ("step-1", "step-2", "step-3")] == [1, 2, 1]


def test_an_async_step_awaiting_past_the_grace_period_is_released_and_the_worker_exits(tmp_path):
    marker = tmp_path / "awaiting"
    handle = async_jobs.async_sleeper.enqueue(seconds=120, mark=str(marker))
    worker = WorkerProcess(tmp_path / "a.log", "--grace", "1")
    try:
        wait_until(marker.exists, what="the step to await")
        worker.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
    finally:
        code = worker.wait(15)
    assert code == 0, worker.output
    assert time.monotonic() - stopped_at < 10
    assert "event=released_after_grace" in worker.output
    run = run_of(handle)
    assert run.status == RunStatus.PENDING and run.recoveries == 0


def test_a_second_signal_exits_at_once(tmp_path):
    handle = jobs.three_steps.enqueue(pause_in_step_2=120)
    worker = WorkerProcess(tmp_path / "a.log", "--grace", "60")
    try:
        wait_until(lambda: executions(handle.id, "step-2") == 1, what="step 2 to start")
        worker.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        worker.process.send_signal(signal.SIGINT)
        started = time.monotonic()
    finally:
        code = worker.wait(10)
    assert code == 1
    assert time.monotonic() - started < 5
    assert "event=exiting_now" in worker.output


def test_max_runs_exits_after_that_many(tmp_path):
    handles = [jobs.echo.enqueue(i) for i in range(5)]
    worker = WorkerProcess(tmp_path / "a.log", "--max-runs", "2", "--concurrency", "2")
    assert worker.wait() == 0, worker.output
    statuses = sorted(run_of(h).status for h in handles)
    assert statuses.count(RunStatus.COMPLETED) == 2
    assert statuses.count(RunStatus.PENDING) == 3
