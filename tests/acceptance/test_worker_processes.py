"""End-to-end: real runworker processes, real SIGKILL, on every database."""

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.storage import get_storage
from django_durable.storage.base import NewRun
from tests.testapp import jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def status(run_id):
    return Run.objects.get(pk=run_id).status


def test_sigkill_during_step_2_resumes_without_rerunning_committed_steps(tmp_path):
    handle = jobs.three_steps.enqueue(pause_in_step_2=120)
    first = WorkerProcess(tmp_path / "first.log")
    try:
        wait_until(lambda: executions(handle.id, "step-2") == 1, what="step 2 to start")
    finally:
        first.kill()
    assert status(handle.id) == RunStatus.RUNNING  # still leased by the dead worker
    assert executions(handle.id, "step-3") == 0

    second = WorkerProcess(tmp_path / "second.log", stale_after=2)
    try:
        wait_until(lambda: status(handle.id) == RunStatus.COMPLETED, what="the run to complete")
    finally:
        assert second.terminate() == 0
    run = Run.objects.get(pk=handle.id)
    assert run.output == ["step-1", "step-2", "step-3"]
    assert run.recoveries == 1 and run.attempt == 1
    assert executions(handle.id, "step-1") == 1
    assert executions(handle.id, "step-2") == 2  # in flight at the kill: ran again
    assert executions(handle.id, "step-3") == 1
    assert "event=recovered_stale_lease" in second.output


def test_threaded_worker_drains_runs_each_step_once(tmp_path):
    handles = [jobs.three_steps.enqueue() for _ in range(20)]
    worker = WorkerProcess(tmp_path / "worker.log", "--burst", "--concurrency", "2")
    assert worker.wait(60) == 0, worker.output
    for handle in handles:
        assert status(handle.id) == RunStatus.COMPLETED
        for step in ("step-1", "step-2", "step-3"):
            assert executions(handle.id, step) == 1


def test_run_of_a_job_no_worker_knows_waits_for_one_that_does(tmp_path):
    record, _ = get_storage().enqueue(
        NewRun(job_name="tests.added_later", queue_name="default", priority=0, args=[], kwargs={})
    )
    old = WorkerProcess(tmp_path / "old.log", "--burst")
    assert old.wait() == 0
    assert "job=tests.added_later pending=1 event=job_not_registered" in old.output
    assert status(record.id) == RunStatus.PENDING

    new = WorkerProcess(tmp_path / "new.log", "--burst", DURABLE_TEST_NEW_CODE="1")
    assert new.wait() == 0, new.output
    run = Run.objects.get(pk=record.id)
    assert run.status == RunStatus.COMPLETED and run.output == "ran"


def test_queue_option_limits_what_a_worker_takes(tmp_path):
    mail = jobs.echo.using(queue_name="mail").enqueue("m")
    default = jobs.echo.enqueue("d")
    worker = WorkerProcess(tmp_path / "mail.log", "--burst", "--queue", "mail")
    assert worker.wait() == 0, worker.output
    assert status(mail.id) == RunStatus.COMPLETED
    assert status(default.id) == RunStatus.PENDING
    other = jobs.echo.using(queue_name="other").enqueue("o")
    everything = WorkerProcess(tmp_path / "all.log", "--burst", "--queue", "*")
    assert everything.wait() == 0, everything.output
    assert status(default.id) == status(other.id) == RunStatus.COMPLETED


def test_progress_and_logs_are_visible_while_the_run_runs(tmp_path):
    from django_durable.models import RunLog

    handle = jobs.reports_progress.enqueue()
    worker = WorkerProcess(tmp_path / "w.log", "--grace", "0")
    try:
        wait_until(lambda: executions(handle.id, "long") == 1, what="the long step")
        run = Run.objects.get(pk=handle.id)
        assert run.status == RunStatus.RUNNING
        assert run.progress == {"done": 1, "total": 2, "message": "halfway"}
        assert list(RunLog.objects.filter(run_id=handle.id).values_list("message", flat=True)) == [
            "first step done"
        ]
    finally:
        assert worker.terminate() == 0
