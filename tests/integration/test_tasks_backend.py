"""The public django.tasks API against DurableBackend, on every database.

Tasks are in tests/testapp/tasks.py under the "durable" TASKS alias (tests/settings.py),
named as in Django's own tests/tasks/ suite.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.test import RequestFactory, override_settings
from django.utils import timezone

from django_durable import RunStatus, cancel_run, get_job
from django_durable import signals as durable_signals
from django_durable.models import Run, Step
from django_durable.tasks import CANCELLED_CLASS_PATH, DurableBackend
from django_durable.testing import run_until_idle
from tests.testapp import jobs, tasks

try:
    from django.tasks import TaskResultStatus, task_backends
    from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus, task_backends
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"


def backend() -> DurableBackend:
    configured = task_backends["durable"]
    assert isinstance(configured, DurableBackend)
    return configured


def test_backend_says_what_it_supports():
    assert backend().supports_defer
    assert backend().supports_priority
    assert backend().supports_get_result
    assert backend().supports_async_task


def test_each_task_is_a_registered_job_named_by_its_module_path():
    from django_durable import registered_jobs

    names = registered_jobs()
    assert "tests.testapp.tasks.calculate_meaning_of_life" in names
    assert tasks.calculate_meaning_of_life.module_path in names


@pytest.mark.django_db
def test_enqueue_stores_a_ready_run_in_the_callers_transaction():
    result = tasks.noop_task.enqueue(1, two=2)
    assert result.status == TaskResultStatus.READY
    assert result.task is tasks.noop_task
    assert result.backend == "durable"
    assert result.args == [1] and result.kwargs == {"two": 2}
    assert result.enqueued_at is not None and result.started_at is None
    run = Run.objects.get(pk=result.id)
    assert run.job_name == "tests.testapp.tasks.noop_task"
    assert (run.queue_name, run.priority, run.args) == ("default", 0, [1])
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


@pytest.mark.django_db(transaction=True)
def test_an_enqueue_rolled_back_with_its_transaction_stores_and_announces_nothing(recorder):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.calculate_meaning_of_life.enqueue()
        assert Run.objects.count() == 1  # visible inside the transaction only
        raise RuntimeError("the view failed")
    assert not Run.objects.exists()
    assert recorder.task_signals() == []
    assert run_until_idle() == 0


@pytest.mark.django_db
def test_unknown_and_malformed_ids_have_no_result():
    unknown = "0190b1d2-0000-7000-8000-000000000000"
    for result_id in (unknown, "not-a-uuid", ""):
        with pytest.raises(TaskResultDoesNotExist):
            backend().get_result(result_id)
    # A run of a plain job is not a task result.
    plain = jobs.echo.enqueue("x")
    with pytest.raises(TaskResultDoesNotExist):
        backend().get_result(str(plain.id))


@pytest.mark.django_db
def test_a_tasks_get_result_refuses_another_tasks_result():
    meaning = tasks.calculate_meaning_of_life.enqueue()
    assert tasks.calculate_meaning_of_life.get_result(meaning.id).id == meaning.id
    with pytest.raises(TaskResultMismatch):
        tasks.noop_task.get_result(meaning.id)


@pytest.mark.django_db
def test_status_follows_the_run():
    napping = tasks.nap.enqueue()
    deferred = tasks.noop_task.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    run_until_idle()
    # A started run waiting on its sleep is RUNNING; a run not yet due is READY.
    assert Run.objects.get(pk=napping.id).status == RunStatus.WAITING
    assert backend().get_result(napping.id).status == TaskResultStatus.RUNNING
    assert Run.objects.get(pk=deferred.id).status == RunStatus.WAITING
    assert backend().get_result(deferred.id).status == TaskResultStatus.READY

    cancel_run(napping.id)
    cancelled = backend().get_result(napping.id)
    assert cancelled.status == TaskResultStatus.FAILED
    assert cancelled.errors[-1].exception_class_path == CANCELLED_CLASS_PATH
    assert cancelled.is_finished


@pytest.mark.django_db
def test_run_after_defers_until_that_time():
    when = timezone.now() + timedelta(hours=1)
    result = tasks.calculate_meaning_of_life.using(run_after=when).enqueue()
    assert run_until_idle() == 0
    run = Run.objects.get(pk=result.id)
    assert run.run_after == when
    assert backend().get_result(result.id).status == TaskResultStatus.READY


@pytest.mark.django_db
def test_priority_orders_execution():
    low = tasks.noop_task.using(priority=-100).enqueue()
    high = tasks.noop_task.using(priority=100).enqueue()
    middle = tasks.noop_task.using(priority=5).enqueue()
    order = []
    for _ in range(3):
        assert run_until_idle(max_runs=1) == 1
        order.extend(
            r.id
            for r in (low, high, middle)
            if r.id not in order
            and backend().get_result(r.id).status == TaskResultStatus.SUCCESSFUL
        )
    assert order == [high.id, middle.id, low.id]
    assert Run.objects.get(pk=high.id).priority == 100


def test_invalid_priority_or_queue_is_refused_where_it_is_written():
    for priority in (101, -101):
        with pytest.raises(InvalidTask, match="priority"):
            tasks.noop_task.using(priority=priority)
    with pytest.raises(InvalidTask, match="Queue 'nowhere'"):
        tasks.noop_task.using(queue_name="nowhere")


def test_naive_run_after_with_use_tz_is_refused():
    with pytest.raises(InvalidTask, match="aware"):
        tasks.noop_task.using(run_after=datetime(2030, 1, 1))


@pytest.mark.django_db
def test_non_json_arguments_raise_at_enqueue_and_store_nothing():
    with pytest.raises(TypeError, match="not JSON"):
        tasks.noop_task.enqueue(object())
    with pytest.raises(TypeError, match="not JSON"):
        tasks.noop_task.enqueue(when=timezone.now())
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_missing_arguments_raise_at_enqueue():
    with pytest.raises(TypeError, match="attempt"):
        tasks.test_context.enqueue()
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_async_enqueue_and_get_result():
    result = async_to_sync(tasks.calculate_meaning_of_life.aenqueue)()
    run_until_idle()
    fetched = async_to_sync(tasks.calculate_meaning_of_life.aget_result)(result.id)
    assert fetched.return_value == 42
    async_to_sync(result.arefresh)()
    assert result.status == TaskResultStatus.SUCCESSFUL


@pytest.mark.django_db
def test_async_tasks_are_async_jobs_with_an_awaited_run_context():
    plain = tasks.async_meaning_of_life.enqueue()
    steps = tasks.async_checkpoints.enqueue()
    assert get_job(tasks.async_checkpoints.module_path).is_async
    run_until_idle()
    assert backend().get_result(plain.id).return_value == 42
    assert backend().get_result(steps.id).return_value == ["first", "RUNNING"]
    assert Step.objects.get(run_id=steps.id).name == "first"
    assert backend().get_result(steps.id).worker_ids  # the execution named its worker


@pytest.mark.django_db
def test_context_durable_checkpoints_steps():
    result = tasks.two_checkpoints.enqueue()
    run_until_idle()
    assert backend().get_result(result.id).return_value == ["first", "second", "third"]
    steps = Step.objects.filter(run_id=result.id).order_by("position")
    assert [s.name for s in steps] == ["first", "second", "third"]


@pytest.mark.django_db
def test_options_give_a_task_a_retry_policy():
    result = tasks.flaky_task.enqueue()
    run_until_idle()
    final = backend().get_result(result.id)
    assert final.status == TaskResultStatus.SUCCESSFUL
    assert final.return_value == 2
    (first_attempt,) = final.errors
    assert first_attempt.exception_class_path == "builtins.ConnectionError"


@pytest.mark.django_db
def test_options_give_a_task_a_timeout():
    result = tasks.hang.enqueue()
    run_until_idle()
    final = backend().get_result(result.id)
    assert final.status == TaskResultStatus.FAILED
    assert final.errors[-1].exception_class_path == "django_durable.exceptions.RunTimedOut"
    assert Step.objects.filter(run_id=result.id, name="never").count() == 0


@pytest.mark.parametrize(
    "options",
    [
        {"RETRY": {}},
        {"TASKS": ["a.b"]},
        {"TASKS": {"a.b": {"retries": 3}}},
        {"TASKS": {"a.b": {"retry": {"max_attempts": 3}}}},
        {"TASKS": {"a.b": {"timeout": -1}}},
    ],
)
def test_bad_options_are_refused_when_the_backend_is_made(options):
    with pytest.raises(ImproperlyConfigured):
        DurableBackend("bad", {"OPTIONS": options})


class Recorder:
    """Every django.tasks and django_durable run signal, in the order they arrive."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.connections = [
            (task_enqueued, "task_enqueued"),
            (task_started, "task_started"),
            (task_finished, "task_finished"),
            (durable_signals.run_enqueued, "run_enqueued"),
            (durable_signals.run_started, "run_started"),
            (durable_signals.run_completed, "run_completed"),
            (durable_signals.run_failed, "run_failed"),
        ]
        for signal, name in self.connections:
            signal.connect(self._receiver(name), weak=False, dispatch_uid=f"test.{name}")

    def _receiver(self, name: str) -> Any:
        def receive(sender: Any, **kwargs: Any) -> None:
            if "task_result" in kwargs:
                result = kwargs["task_result"]
                self.seen.append((name, result.id, result.status))
            else:
                self.seen.append((name, str(kwargs["run"].id), kwargs["run"].status))

        return receive

    def disconnect(self) -> None:
        for signal, name in self.connections:
            signal.disconnect(dispatch_uid=f"test.{name}")

    def task_signals(self) -> list[tuple[str, str, Any]]:
        return [seen for seen in self.seen if seen[0].startswith("task_")]


@pytest.fixture
def recorder():
    recorder = Recorder()
    yield recorder
    recorder.disconnect()


@pytest.mark.django_db(transaction=True)
def test_signals_for_a_success_arrive_in_order(recorder):
    with transaction.atomic():
        result = tasks.calculate_meaning_of_life.enqueue()
        assert recorder.seen == []  # sent once the enqueue commits
    run_until_idle()
    assert recorder.task_signals() == [
        ("task_enqueued", result.id, TaskResultStatus.READY),
        ("task_started", result.id, TaskResultStatus.RUNNING),
        ("task_finished", result.id, TaskResultStatus.SUCCESSFUL),
    ]
    names = [name for name, _, _ in recorder.seen]
    # django_durable's own signals still arrive. task_finished is sent by a receiver of
    # run_completed, so it comes among that signal's receivers.
    assert names[:4] == ["run_enqueued", "task_enqueued", "run_started", "task_started"]
    assert sorted(names[4:]) == ["run_completed", "task_finished"]


@pytest.mark.django_db(transaction=True)
def test_signals_for_a_failure_arrive_in_order(recorder):
    failures: list[Any] = []

    def keep(sender: Any, task_result: Any, **kwargs: Any) -> None:
        if task_result.status == TaskResultStatus.FAILED:
            failures.append(task_result)

    task_finished.connect(keep, weak=False, dispatch_uid="test.keep")
    try:
        result = tasks.failing_task_value_error.enqueue()
        run_until_idle()
    finally:
        task_finished.disconnect(dispatch_uid="test.keep")
    assert recorder.task_signals() == [
        ("task_enqueued", result.id, TaskResultStatus.READY),
        ("task_started", result.id, TaskResultStatus.RUNNING),
        ("task_finished", result.id, TaskResultStatus.FAILED),
    ]
    assert "run_failed" in [name for name, _, _ in recorder.seen]
    (finished,) = failures
    assert finished.errors[0].exception_class_path == "builtins.ValueError"
    # The execution that failed is on record by the time task_finished is sent.
    assert len(finished.worker_ids) == 1 and finished.attempts == 1
    assert finished.last_attempted_at is not None and finished.finished_at is not None


@pytest.mark.django_db
def test_check_passes_when_configured_and_names_a_missing_database():
    assert backend().check() == []
    with override_settings(DURABLE={"DATABASE": "elsewhere"}):
        (error,) = backend().check()
    assert error.id == "django_durable.T002"
    with override_settings(INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"]):
        assert [e.id for e in backend().check()] == ["django_durable.T001"]


@pytest.mark.django_db
def test_keyboard_interrupt_raised_in_a_step_fails_the_run_on_the_calling_thread():
    # run_until_idle executes on the calling thread: the exception must not escape it.
    result = tasks.exits_in_a_step.enqueue()
    assert run_until_idle() == 1
    final = backend().get_result(result.id)
    assert final.status == TaskResultStatus.FAILED
    assert final.errors[0].exception_class_path == "builtins.KeyboardInterrupt"


def test_the_settings_sample_configures_the_backend():
    namespace: dict[str, Any] = {}
    exec((SNIPPETS / "settings_tasks.py").read_text(), namespace)
    with override_settings(TASKS=namespace["TASKS"]):
        configured = task_backends["default"]
        assert isinstance(configured, DurableBackend)
        assert configured.queues == {"default", "emails"}
        assert configured.check() == []


def test_the_options_sample_makes_a_backend_with_that_policy():
    namespace: dict[str, Any] = {}
    exec((SNIPPETS / "settings_tasks_options.py").read_text(), namespace)
    params = namespace["TASKS"]["default"]
    made = DurableBackend("default", params)
    options = made.job_options["shop.tasks.send_thanks"]
    assert options["retry"].max_attempts == 5
    assert options["timeout"] == timedelta(minutes=2)


@pytest.mark.django_db
def test_the_guides_tasks_and_views_run_as_it_says():
    pytest.importorskip("django.tasks", reason="the guide's samples import django.tasks")
    from docs.snippets.stand_ins import mailer

    thanked_before = mailer.sent.count("thanks 7")
    with override_settings(TASKS={"default": {"BACKEND": "django_durable.tasks.DurableBackend"}}):
        shop_tasks = importlib.import_module("docs.snippets.tasks.tasks")
        views = importlib.import_module("docs.snippets.tasks.views")
        response = views.order_paid(RequestFactory().post("/"), order_id=7)
        result_id = json.loads(response.content)["task"]
        assert json.loads(views.task_status(RequestFactory().get("/"), result_id).content) == {
            "status": "READY",
            "errors": [],
        }
        run_until_idle()
        assert json.loads(views.task_status(RequestFactory().get("/"), result_id).content) == {
            "status": "SUCCESSFUL",
            "errors": [],
            "value": "thanks-7",
        }
        (follow,) = Run.objects.filter(job_name=shop_tasks.follow_up.module_path)
        assert follow.priority == 10
        # Thanked, then asleep for a week: a run that started and waits reads RUNNING.
        assert shop_tasks.follow_up.get_result(str(follow.id)).status == TaskResultStatus.RUNNING
        assert mailer.sent.count("thanks 7") - thanked_before == 2


def test_without_django_tasks_or_the_backport_the_configured_backend_says_what_to_install():
    # A fresh interpreter in which neither package can be imported.
    script = (
        "import sys\n"
        "sys.modules['django.tasks'] = None\n"
        "sys.modules['django_tasks'] = None\n"
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(\n"
        "    INSTALLED_APPS=['django_durable'],\n"
        "    DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}},\n"
        "    TASKS={'default': {'BACKEND': 'django_durable.tasks.DurableBackend'}},\n"
        ")\n"
        "try:\n"
        "    django.setup()\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert "ImproperlyConfigured" in done.stdout, done.stdout + done.stderr
    assert "pip install 'django-durable-runs[tasks]'" in done.stdout
