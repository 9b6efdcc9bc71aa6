"""The admin: list, filters, search, the run page, actions, permissions and the overview."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_durable import RunStatus, send_event
from django_durable.models import Run, Worker
from django_durable.testing import run_until_idle
from django_durable.testing.factories import RunFactory, RunLogFactory, StepFactory
from tests.testapp import jobs
from tests.testapp.jobs import executions

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:django_durable_run_changelist"
ACTION_PERMISSIONS = ("retry_run", "cancel_run", "restart_run", "send_event")


def detail_url(run_id):
    return reverse("admin:django_durable_run_change", args=[run_id])


def action_url(run_id, name):
    return reverse("admin:django_durable_run_action", args=[run_id, name])


def staff(django_user_model, *codenames, username="operator"):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_durable", codename__in=codenames)
    )
    return user


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(staff(django_user_model, "view_run", *ACTION_PERMISSIONS))
    return client


@pytest.fixture
def viewer(client, django_user_model):
    client.force_login(staff(django_user_model, "view_run", username="viewer"))
    return client


def failed_run():
    handle = jobs.fails_first_attempt.enqueue()
    run_until_idle()
    assert Run.objects.get(pk=handle.id).status == RunStatus.FAILED
    return handle


def changelist_action(client, action, runs, **extra):
    data = {"action": action, "_selected_action": [str(run.pk) for run in runs], **extra}
    if "apply" not in extra:
        data["index"] = "0"
    return client.post(reverse(CHANGELIST), data)


def messages_of(response):
    return [str(message) for message in response.context["messages"]] if response.context else []


# -- the list -------------------------------------------------------------------------------


def test_list_shows_badges_progress_and_durations(operator):
    running = RunFactory(
        status=RunStatus.RUNNING,
        started_at=timezone.now() - timedelta(seconds=5),
        progress={"done": 3, "total": 4, "message": "three of four"},
    )
    done = RunFactory(completed=True, job_name="tests.echo", queue_name="slow")
    response = operator.get(reverse(CHANGELIST))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="durable-badge durable-running">Running<' in html
    assert 'class="durable-badge durable-completed">Completed<' in html
    assert 'title="three of four"><span style="width:75.0%">' in html
    assert str(running.pk) in html and str(done.pk) in html
    assert "2 runs" in html


def test_list_never_counts_the_whole_table(operator):
    RunFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        assert operator.get(reverse(CHANGELIST), {"status__exact": "pending"}).status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the filtered list is counted"
    # Every count is of a bounded subquery (the capped paginator); none of the whole table.
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_filters_by_status_job_queue_and_creation(operator):
    failed = RunFactory(failed=True, job_name="tests.square")
    echo = RunFactory(job_name="tests.echo", queue_name="slow")
    old = RunFactory(job_name="tests.echo")
    Run.objects.filter(pk=old.pk).update(id="00000000-0000-7000-8000-000000000001")

    def listed(**params):
        response = operator.get(reverse(CHANGELIST), params)
        return {str(run.pk) for run in response.context["cl"].result_list}

    assert listed(status__exact="failed") == {str(failed.pk)}
    assert listed(job="tests.echo") == {str(echo.pk), "00000000-0000-7000-8000-000000000001"}
    assert listed(queue="slow") == {str(echo.pk)}
    assert listed(created="1h") == {str(failed.pk), str(echo.pk)}


def test_search_by_id_prefix_and_keys(operator):
    keyed = RunFactory(idempotency_key="order-17", concurrency_key="customer-3")
    other = RunFactory()
    search = lambda term: {  # noqa: E731
        str(run.pk)
        for run in operator.get(reverse(CHANGELIST), {"q": term}).context["cl"].result_list
    }
    assert search(str(keyed.pk)) == {str(keyed.pk)}
    assert search(keyed.pk.hex[:24]) == {str(keyed.pk)}
    assert search(str(other.pk).upper()) == {str(other.pk)}
    assert search("order-17") == {str(keyed.pk)}
    assert search("customer-3") == {str(keyed.pk)}
    assert search("nothing-like-it") == set()


# -- the run page ---------------------------------------------------------------------------


def test_run_page_shows_traceback_args_steps_and_logs(operator):
    handle = failed_run()
    run = Run.objects.get(pk=handle.id)
    html = operator.get(detail_url(run.pk)).content.decode()
    assert "RuntimeError" in html and "first attempt fails" in html
    assert "Traceback (most recent call last)" in html
    assert "&quot;args&quot;: []" in html  # pretty JSON, escaped
    assert "<td>one<details>" in html and "<td>two" in html  # both steps in the timeline
    assert 'class="durable-bar durable-completed"' in html
    assert 'action="{}"'.format(action_url(run.pk, "retry")) in html


def test_run_page_shows_events_children_and_lease(operator):
    parent = jobs.fan_out.enqueue([2, 3])
    run_until_idle(max_runs=1)
    send_event(parent.id, "unrelated", {"x": 1})
    html = operator.get(detail_url(parent.id)).content.decode()
    children = Run.objects.filter(parent_id=parent.id)
    assert all(str(child.pk) in html for child in children)
    assert "unrelated" in html and "not yet" in html
    running = RunFactory(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        lease_owner="host:123:abc",
        lease_expires_at=timezone.now() + timedelta(seconds=30),
    )
    html = operator.get(detail_url(running.pk)).content.decode()
    assert "host:123:abc" in html and "Last heartbeat" in html


@pytest.mark.parametrize("steps", [3, 60])
def test_run_page_costs_the_same_queries_whatever_the_steps(operator, steps):
    run = RunFactory(completed=True)
    StepFactory.create_batch(steps, run=run)
    RunLogFactory.create_batch(steps, run=run)
    operator.get(detail_url(run.pk))  # warm the session and content types
    with CaptureQueriesContext(connection) as queries:
        assert operator.get(detail_url(run.pk)).status_code == 200
    # Session, user, two permission lookups, the run, steps, logs, events, children, forks.
    assert len(queries.captured_queries) <= 10, [q["sql"] for q in queries.captured_queries]


# -- actions --------------------------------------------------------------------------------


def test_retry_from_the_list_skips_runs_it_cannot_retry(operator):
    handle = failed_run()
    done = RunFactory(completed=True)
    response = changelist_action(operator, "retry_runs", [Run(pk=handle.id), done])
    assert response.status_code == 302
    messages = messages_of(operator.get(response.url))
    assert "Retried 1 run." in messages
    assert "Skipped 1 run that was not failed or cancelled." in messages
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.attempt) == (RunStatus.PENDING, 2)
    run_until_idle()
    assert Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED
    entry = LogEntry.objects.get(object_id=str(handle.id))
    assert entry.change_message == "Retry (admin action)"


def test_cancel_from_the_list(operator):
    pending = RunFactory()
    response = changelist_action(operator, "cancel_runs", [pending])
    assert response.status_code == 302
    assert Run.objects.get(pk=pending.pk).status == RunStatus.CANCELLED
    assert LogEntry.objects.filter(object_id=str(pending.pk)).count() == 1


def test_restart_asks_for_confirmation_then_clears_the_journal(operator):
    handle = jobs.three_steps.enqueue()
    run_until_idle()
    page = changelist_action(operator, "restart_runs", [Run(pk=handle.id)])
    assert page.status_code == 200 and b"every step runs again" in page.content
    assert Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED  # nothing yet
    confirmed = changelist_action(operator, "restart_runs", [Run(pk=handle.id)], apply="yes")
    assert confirmed.status_code == 302
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.attempt, run.steps.count()) == (RunStatus.PENDING, 2, 0)
    run_until_idle()
    assert executions(handle.id, "step-1") == 2
    assert LogEntry.objects.get(object_id=str(handle.id)).change_message.startswith("Restart")


def test_send_event_form_validates_json_then_wakes_the_run(operator):
    handle = jobs.approval.enqueue()
    run_until_idle()
    url = action_url(handle.id, "send_event")
    assert b'name="payload"' in operator.get(url).content
    bad = operator.post(url, {"name": "approval", "payload": "{not json", "apply": "1"})
    assert bad.status_code == 200 and b"Not valid JSON" in bad.content
    assert Run.objects.get(pk=handle.id).status == RunStatus.WAITING
    good = operator.post(url, {"name": "approval", "payload": '{"ok": true}', "apply": "1"})
    assert good.status_code == 302 and good.url == detail_url(handle.id)
    assert Run.objects.get(pk=handle.id).status == RunStatus.PENDING
    run_until_idle()
    assert Run.objects.get(pk=handle.id).output == {"ok": True}
    assert "approval" in LogEntry.objects.get(object_id=str(handle.id)).change_message


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("approval", '"a\\u0000b"', "NUL"),
        ("approval", "[" * 200_000 + "]" * 200_000, "nested too deeply"),  # json's own limit
        ("approval", "[" * 30 + "]" * 30, "nested 21 levels deep"),
        ("approval", "NaN", "NaN"),
        ("approval", '"' + "x" * (2 * 1024 * 1024) + '"', "bytes"),
        ("appro\u0000val", "1", "Null characters are not allowed"),
    ],
)
def test_send_event_form_says_why_a_value_is_refused(operator, name, payload, reason):
    from django_durable.models import RunEvent

    handle = jobs.approval.enqueue()
    run_until_idle()
    url = action_url(handle.id, "send_event")
    refused = operator.post(url, {"name": name, "payload": payload, "apply": "1"})
    assert refused.status_code == 200 and reason in refused.content.decode()
    assert b"Skipped" not in refused.content
    assert not RunEvent.objects.filter(run_id=handle.id).exists()
    assert Run.objects.get(pk=handle.id).status == RunStatus.WAITING


def test_send_event_from_the_list(operator):
    handle = jobs.approval.enqueue()
    run_until_idle()
    form = changelist_action(operator, "send_event_to_runs", [Run(pk=handle.id)])
    assert form.status_code == 200 and b'name="payload"' in form.content
    sent = changelist_action(
        operator,
        "send_event_to_runs",
        [Run(pk=handle.id)],
        name="approval",
        payload='"yes"',
        apply="1",
    )
    assert sent.status_code == 302
    run_until_idle()
    assert Run.objects.get(pk=handle.id).output == "yes"


def test_buttons_on_the_run_page_retry_and_cancel(operator):
    handle = failed_run()
    response = operator.post(action_url(handle.id, "retry"))
    assert response.status_code == 302 and response.url == detail_url(handle.id)
    assert Run.objects.get(pk=handle.id).status == RunStatus.PENDING
    assert operator.post(action_url(handle.id, "cancel")).status_code == 302
    assert Run.objects.get(pk=handle.id).status == RunStatus.CANCELLED
    # Retrying a run that is no longer failed is reported, not an error.
    done = RunFactory(completed=True)
    response = operator.post(action_url(done.pk, "retry"), follow=True)
    assert "Skipped 1 run that was not failed or cancelled." in messages_of(response)
    assert Run.objects.get(pk=done.pk).status == RunStatus.COMPLETED


def test_restart_button_confirms_first(operator):
    done = RunFactory(completed=True)
    url = action_url(done.pk, "restart")
    assert b"Yes, restart" in operator.get(url).content
    assert Run.objects.get(pk=done.pk).status == RunStatus.COMPLETED
    assert operator.post(url, {"apply": "yes"}).status_code == 302
    assert Run.objects.get(pk=done.pk).status == RunStatus.PENDING


# -- permissions and CSRF -------------------------------------------------------------------


def test_a_viewer_sees_no_action_and_gets_403_on_forged_posts(viewer):
    handle = failed_run()
    html = viewer.get(detail_url(handle.id)).content.decode()
    assert "durable-actions" not in html and "Retry" not in html
    listing = viewer.get(reverse(CHANGELIST)).content.decode()
    assert "retry_runs" not in listing and "cancel_runs" not in listing
    for name in ("retry", "cancel", "restart", "send_event"):
        assert viewer.post(action_url(handle.id, name), {"apply": "1"}).status_code == 403
    for action in ("retry_runs", "cancel_runs", "restart_runs", "send_event_to_runs"):
        response = changelist_action(viewer, action, [Run(pk=handle.id)])
        assert response.status_code == 403
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.attempt) == (RunStatus.FAILED, 1)
    assert not LogEntry.objects.exists()


def test_each_action_needs_its_own_permission(client, django_user_model):
    client.force_login(staff(django_user_model, "view_run", "cancel_run"))
    handle = failed_run()
    html = client.get(detail_url(handle.id)).content.decode()
    assert "Retry" not in html  # failed: cancel is not legal either, so no button at all
    assert client.post(action_url(handle.id, "retry")).status_code == 403
    pending = RunFactory()
    assert ">Cancel<" in client.get(detail_url(pending.pk)).content.decode()
    assert client.post(action_url(pending.pk, "cancel")).status_code == 302
    assert Run.objects.get(pk=pending.pk).status == RunStatus.CANCELLED


def test_staff_without_view_permission_cannot_open_runs(client, django_user_model):
    client.force_login(staff(django_user_model, "retry_run"))
    run = RunFactory(failed=True)
    assert client.get(detail_url(run.pk)).status_code == 403
    assert client.post(action_url(run.pk, "retry")).status_code == 403
    assert client.get(reverse(CHANGELIST)).status_code == 403
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_actions_are_csrf_protected(django_user_model):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff(django_user_model, "view_run", *ACTION_PERMISSIONS))
    handle = failed_run()
    assert browser.post(action_url(handle.id, "retry")).status_code == 403
    forged = browser.post(
        reverse(CHANGELIST),
        {"action": "retry_runs", "_selected_action": [str(handle.id)], "index": "0"},
    )
    assert forged.status_code == 403
    assert Run.objects.get(pk=handle.id).status == RunStatus.FAILED
    browser.get(detail_url(handle.id))  # sets the CSRF cookie, as a browser would
    token = browser.cookies["csrftoken"].value
    response = browser.post(action_url(handle.id, "retry"), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Run.objects.get(pk=handle.id).status == RunStatus.PENDING


# -- the overview ---------------------------------------------------------------------------


def test_overview_counts_failures_throughput_and_workers(operator):
    failed_run()
    RunFactory.create_batch(2, completed=True, job_name="tests.echo")
    RunFactory(job_name="tests.echo", run_after=timezone.now() - timedelta(minutes=5))
    RunFactory(job_name="retired.job")
    now = timezone.now()
    Worker.objects.create(
        worker_id="web-1:42:aa",
        hostname="web-1",
        pid=42,
        queues=["default"],
        jobs=["tests.echo"],
        concurrency=4,
        started_at=now,
        last_seen_at=now,
    )
    Worker.objects.create(
        worker_id="web-2:7:bb",
        hostname="web-2",
        pid=7,
        queues=None,
        jobs=["retired.job"],
        concurrency=1,
        started_at=now - timedelta(hours=2),
        last_seen_at=now - timedelta(hours=1),
    )
    index = operator.get(reverse("admin:app_list", args=["django_durable"])).content.decode()
    url = reverse("admin:django_durable_runoverview_changelist")
    assert url in index
    response = operator.get(url)
    assert response.status_code == 200
    context = response.context
    counts = {row["value"]: row["count"] for row in context["statuses"]}
    assert counts["completed"] == 2 and counts["failed"] == 1 and counts["pending"] == 2
    assert {job["name"] for job in context["jobs"]} == {
        "tests.fails_first_attempt",
        "tests.echo",
        "retired.job",
    }
    assert context["failures_count"] == 1
    assert "first attempt fails" in response.content.decode()
    assert sum(minute["total"] for minute in context["throughput"]) == 3
    assert context["oldest_pending_age"].endswith("min")
    # web-2 serves retired.job but is dead; web-1 is live and serves tests.echo.
    assert [row["job_name"] for row in context["unserved"]] == ["retired.job"]
    assert [worker.worker_id for worker in context["live_workers"]] == ["web-1:42:aa"]
    assert [worker.worker_id for worker in context["dead_workers"]] == ["web-2:7:bb"]


def test_overview_needs_view_permission(client, django_user_model):
    client.force_login(staff(django_user_model, "retry_run"))
    url = reverse("admin:django_durable_runoverview_changelist")
    assert client.get(url).status_code == 403


def test_the_admin_guides_operators_group_grants_every_action(client, django_user_model):
    guide = (Path(__file__).resolve().parents[2] / "docs" / "admin.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.DOTALL)
    (sample,) = [block for block in blocks if "Run operators" in block]
    exec(sample, {})
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Run operators"))
    client.force_login(user)
    done = RunFactory(completed=True)
    html = client.get(detail_url(done.pk)).content.decode()
    assert "Restart from scratch" in html
    assert client.post(action_url(done.pk, "restart"), {"apply": "1"}).status_code == 302
    assert Run.objects.get(pk=done.pk).status == RunStatus.PENDING
