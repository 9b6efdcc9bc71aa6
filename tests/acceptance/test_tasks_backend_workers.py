"""DurableBackend's tasks executed by real ``runworker`` processes: results read back,
a SIGKILL mid-task, a cancel while running (tests/integration/test_tasks_backend.py has
the rest of the API)."""

import json
import subprocess
import sys

import pytest

from django_durable import cancel_run
from django_durable.models import Run
from django_durable.tasks import CANCELLED_CLASS_PATH
from tests.integration.test_tasks_backend import backend
from tests.testapp import tasks
from tests.testapp.jobs import executions
from tests.workers import ROOT, WorkerProcess, process_env, wait_until

try:
    from django.tasks import TaskResultStatus
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus


@pytest.mark.django_db(transaction=True)
def test_results_read_back_after_a_real_burst_worker(tmp_path):
    # First in the claim order: a task that ended its worker's slot would leave the rest
    # unexecuted and the burst worker wedged.
    system_exit = tasks.failing_task_system_exit.enqueue()
    interrupt = tasks.failing_task_keyboard_interrupt.enqueue()
    meaning = tasks.calculate_meaning_of_life.enqueue()
    noop = tasks.noop_task.enqueue("a", b=1)
    failing = tasks.failing_task_value_error.enqueue()
    complex_value = tasks.complex_return_value.enqueue()
    with_context = tasks.test_context.enqueue(attempt=1)
    task_id = tasks.get_task_id.enqueue()
    other = tasks.other_queue_task.enqueue()

    worker = WorkerProcess(
        tmp_path / "worker.log", "--burst", "--queue", "*", "--worker-id", "burst-worker"
    )
    try:
        assert worker.wait(timeout=120) == 0, worker.output
    finally:
        if worker.process.poll() is None:
            worker.kill()

    result = tasks.calculate_meaning_of_life.get_result(meaning.id)
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42
    assert result.errors == []
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.started_at <= result.last_attempted_at <= result.finished_at
    assert result.worker_ids == ["burst-worker"]
    assert backend().get_result(noop.id).return_value is None
    assert tasks.other_queue_task.get_result(other.id).return_value == "other"

    failed = backend().get_result(failing.id)
    assert failed.status == TaskResultStatus.FAILED
    (error,) = failed.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "This task failed due to ValueError" in error.traceback
    with pytest.raises(ValueError, match="Task failed"):
        _ = failed.return_value

    for exited, name in ((system_exit, "SystemExit"), (interrupt, "KeyboardInterrupt")):
        ended = backend().get_result(exited.id)
        assert ended.status == TaskResultStatus.FAILED
        (error,) = ended.errors
        assert error.exception_class_path == f"builtins.{name}"
        assert f"This task failed due to {name}" in error.traceback
        assert ended.worker_ids == ["burst-worker"]

    not_json = backend().get_result(complex_value.id)
    assert not_json.status == TaskResultStatus.FAILED
    assert not_json.errors[0].exception_class is TypeError

    context_result = backend().get_result(with_context.id)
    assert context_result.return_value == {"attempt": 1, "run_id": with_context.id}
    assert backend().get_result(task_id.id).return_value == task_id.id

    # A fresh process, which knows the tasks by importing the apps' tasks.py, reads the same.
    script = (
        "import json; from tests.testapp import tasks; "
        f"r = tasks.calculate_meaning_of_life.get_result({meaning.id!r}); "
        "print(json.dumps([r.status, r.return_value, r.worker_ids]))"
    )
    reader = subprocess.run(
        [sys.executable, "-m", "django", "shell", "-v", "0", "-c", script],
        env=process_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert reader.returncode == 0, reader.stderr
    assert json.loads(reader.stdout) == ["SUCCESSFUL", 42, ["burst-worker"]]

    # The result enqueue returned catches up in place.
    assert meaning.status == TaskResultStatus.READY
    meaning.refresh()
    assert meaning.status == TaskResultStatus.SUCCESSFUL
    assert meaning.return_value == 42
    assert meaning.finished_at == result.finished_at


@pytest.mark.django_db(transaction=True)
def test_sigkill_during_a_context_task_resumes_without_rerunning_its_steps(tmp_path):
    result = tasks.two_checkpoints.enqueue(pause=120)
    first = WorkerProcess(tmp_path / "first.log", "--worker-id", "first")
    try:
        wait_until(lambda: executions(result.id, "third") == 1, what="the third step")
    finally:
        first.kill()
    killed = backend().get_result(result.id)
    assert killed.status == TaskResultStatus.RUNNING
    assert killed.worker_ids == ["first"]

    second = WorkerProcess(tmp_path / "second.log", "--worker-id", "second", stale_after=2)
    try:
        wait_until(
            lambda: backend().get_result(result.id).is_finished,
            timeout=60,
            what="the task to finish",
        )
    finally:
        assert second.terminate() == 0
    final = backend().get_result(result.id)
    assert final.status == TaskResultStatus.SUCCESSFUL, second.output
    assert final.return_value == ["first", "second", "third"]
    assert executions(result.id, "first") == 1
    assert executions(result.id, "second") == 1
    assert executions(result.id, "third") == 2  # in flight at the kill: ran again
    assert Run.objects.get(pk=result.id).recoveries == 1
    # Both executions are on record, the second one last.
    assert final.worker_ids == ["first", "second"]
    assert killed.last_attempted_at < final.last_attempted_at <= final.finished_at


@pytest.mark.django_db(transaction=True)
def test_a_hanging_task_cancelled_while_a_worker_runs_it_reads_failed(tmp_path):
    hanging = tasks.hang_until_cancelled.enqueue()
    # A short grace: on a failure below, the hanging task must not hold the worker's exit.
    worker = WorkerProcess(tmp_path / "worker.log", "--worker-id", "w1", "--grace", "1")
    try:
        wait_until(
            lambda: backend().get_result(hanging.id).worker_ids == ["w1"],
            what="the task to start",
        )
        assert backend().get_result(hanging.id).status == TaskResultStatus.RUNNING
        cancel_run(hanging.id)
        wait_until(lambda: backend().get_result(hanging.id).is_finished, what="the cancel")
        # The worker goes on with other work.
        after = tasks.calculate_meaning_of_life.enqueue()
        wait_until(lambda: backend().get_result(after.id).is_finished, what="the next task")
    finally:
        assert worker.terminate() == 0, worker.output
    cancelled = backend().get_result(hanging.id)
    assert cancelled.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in cancelled.errors] == [CANCELLED_CLASS_PATH]
    assert cancelled.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        _ = cancelled.return_value
    assert backend().get_result(after.id).return_value == 42
