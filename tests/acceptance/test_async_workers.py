"""``async def`` jobs in real runworker processes: SIGKILL, events, children, and many
I/O-bound runs on one event loop."""

import time

import pytest
from django.db import connection

from django_durable import RunStatus, send_event
from django_durable.models import Run, Step
from tests.testapp import async_jobs
from tests.testapp.jobs import executions
from tests.testapp.models import Account
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def status(run_id):
    return Run.objects.get(pk=run_id).status


def test_sigkill_mid_run_resumes_without_rerunning_committed_async_steps(tmp_path):
    handle = async_jobs.async_steps.enqueue(pause_in_step_2=120)
    first = WorkerProcess(tmp_path / "first.log", "--async-concurrency", "4")
    try:
        wait_until(lambda: executions(handle.id, "step-2") == 1, what="step 2 to start")
    finally:
        first.kill()
    assert status(handle.id) == RunStatus.RUNNING  # still leased by the dead worker

    second = WorkerProcess(tmp_path / "second.log", "--async-concurrency", "4", stale_after=2)
    try:
        wait_until(lambda: status(handle.id) == RunStatus.COMPLETED, what="the run to complete")
    finally:
        assert second.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.output == ["step-1", "step-2", "step-3"]
    assert run.recoveries == 1
    assert [executions(handle.id, f"step-{n}") for n in (1, 2, 3)] == [1, 2, 1]
    assert "event=recovered_stale_lease" in second.output


def test_an_async_atomic_step_killed_mid_body_writes_once(tmp_path):
    marker = tmp_path / "paused"
    handle = async_jobs.async_atomic.enqueue("ada", pause_once_at=str(marker))
    first = WorkerProcess(tmp_path / "first.log")
    try:
        wait_until(marker.exists, what="the atomic step to write and pause")
    finally:
        first.kill()
    assert Account.objects.count() == 0  # its transaction died with the worker

    second = WorkerProcess(tmp_path / "second.log", stale_after=2)
    try:
        wait_until(lambda: status(handle.id) == RunStatus.COMPLETED, what="the run to complete")
    finally:
        assert second.terminate() == 0
    assert sorted(Account.objects.values_list("owner", flat=True)) == ["ada", "ada-sync"]


def test_async_sleep_event_and_child_in_a_worker_process(tmp_path):
    handle = async_jobs.async_waits.enqueue()
    worker = WorkerProcess(tmp_path / "worker.log")
    try:
        wait_until(
            lambda: Step.objects.filter(run_id=handle.id, name="go", status="waiting").exists(),
            what="the run to wait for its event",
        )
        send_event(handle.id, "go", "now")
        wait_until(lambda: status(handle.id) == RunStatus.COMPLETED, what="the run to complete")
    finally:
        assert worker.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.output == {"payload": "now", "child": ["step-1", "step-2", "step-3"]}


def backends():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the issue's figure is on PostgreSQL")
def test_one_process_completes_500_one_second_runs_in_under_10_seconds(tmp_path):
    handles = async_jobs.async_sleeper.enqueue_many([{"seconds": 1.0}] * 500)
    ids = [handle.id for handle in handles]
    worker = WorkerProcess(
        tmp_path / "worker.log", "--concurrency", "2", "--async-concurrency", "500"
    )
    most = 0
    try:
        deadline = time.monotonic() + 60
        while Run.objects.filter(pk__in=ids, status=RunStatus.COMPLETED).count() < 500:
            assert time.monotonic() < deadline, "500 runs did not complete within 60 s"
            most = max(most, backends())
            time.sleep(0.2)
    finally:
        assert worker.terminate() == 0
    runs = Run.objects.filter(pk__in=ids)
    first = min(run.started_at for run in runs)
    last = max(run.finished_at for run in runs)
    seconds = (last - first).total_seconds()
    print(f"500 runs of a 1 s async step: {seconds:.2f} s, at most {most} connections")
    assert seconds < 10
    # The loop's 4 database threads, the claiming thread, the listener: not one per run.
    assert most <= 10
