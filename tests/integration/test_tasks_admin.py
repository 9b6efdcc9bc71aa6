"""The admin shows django.tasks runs as it shows job runs: the job column is the task path."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from django_durable.models import Run
from django_durable.tasks import EXECUTED_BY, DurableBackend
from django_durable.testing import run_until_idle
from tests.integration.test_admin import ACTION_PERMISSIONS, action_url, detail_url, staff
from tests.testapp import tasks

try:
    from django.tasks import TaskResultStatus, task_backends
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import TaskResultStatus, task_backends

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_durable_run_changelist"


def backend() -> DurableBackend:
    configured = task_backends["durable"]
    assert isinstance(configured, DurableBackend)
    return configured


@pytest.fixture
def operator(client: Client, django_user_model) -> Client:
    client.force_login(staff(django_user_model, "view_run", *ACTION_PERMISSIONS))
    return client


def test_the_list_shows_task_runs_by_their_task_path_and_filters_on_it(operator):
    checkpointed = tasks.two_checkpoints.enqueue()
    failing = tasks.failing_task_value_error.enqueue()
    run_until_idle()
    response = operator.get(reverse(CHANGELIST))
    assert response.status_code == 200
    html = response.content.decode()
    # The job column may break a dotted name after its dots (<wbr>): compare its text.
    jobs_listed = {
        re.sub(r"<[^>]+>", "", cell)
        for cell in re.findall(r'<td class="field-job">(.*?)</td>', html)
    }
    assert jobs_listed == {
        "tests.testapp.tasks.two_checkpoints",
        "tests.testapp.tasks.failing_task_value_error",
    }
    assert 'class="durable-badge durable-completed">Completed<' in html
    assert 'class="durable-badge durable-failed">Failed<' in html
    # The job filter offers the task paths (they are registered jobs) and narrows to one.
    filter_link = "?job=tests.testapp.tasks.failing_task_value_error"
    assert filter_link in html
    listed = operator.get(reverse(CHANGELIST), {"job": tasks.failing_task_value_error.module_path})
    assert [str(run.pk) for run in listed.context["cl"].result_list] == [failing.id]
    assert checkpointed.id in html


def test_the_run_page_of_a_task_shows_its_path_steps_worker_and_escaped_args(operator):
    result = tasks.two_checkpoints.enqueue(pause=0.0)
    hostile = tasks.noop_task.enqueue("<script>alert(1)</script>")
    run_until_idle()
    html = operator.get(detail_url(result.id)).content.decode()
    assert f"<title>tests.testapp.tasks.two_checkpoints {result.id}" in html
    for step in ("first", "second", "third"):
        assert f"<td>{step}<details>" in html
    # The log line each execution stores, which TaskResult.worker_ids is read from.
    (worker_id,) = backend().get_result(result.id).worker_ids
    assert f"{EXECUTED_BY}{worker_id}" in html
    page = operator.get(detail_url(hostile.id)).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page


def test_retry_from_the_run_page_runs_the_task_again(operator):
    failing = tasks.failing_task_value_error.enqueue()
    run_until_idle()
    page = operator.get(detail_url(failing.id)).content.decode()
    assert "This task failed due to ValueError" in page
    assert 'action="{}"'.format(action_url(failing.id, "retry")) in page
    response = operator.post(action_url(failing.id, "retry"))
    assert response.status_code == 302
    assert backend().get_result(failing.id).status == TaskResultStatus.READY
    run_until_idle()
    again = backend().get_result(failing.id)
    assert again.status == TaskResultStatus.FAILED
    assert [e.exception_class_path for e in again.errors] == ["builtins.ValueError"] * 2
    assert len(again.worker_ids) == 2  # one execution per attempt
    assert Run.objects.get(pk=failing.id).attempt == 2


def test_task_runs_need_the_view_permission(client, django_user_model):
    result = tasks.noop_task.enqueue()
    client.force_login(staff(django_user_model, username="nobody"))
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert client.get(detail_url(result.id)).status_code == 403
    assert client.post(action_url(result.id, "cancel")).status_code == 403
    assert backend().get_result(result.id).status == TaskResultStatus.READY
