"""The admin reads DURABLE["DATABASE"]: runs on a second alias show, the default's do not.

The "durable" alias (tests/settings.py) holds every table and has no router, so the
default manager reads "default": a page that ignored the setting would show the decoy
run and worker below and none of the real ones.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from django_durable import RunStatus, send_event
from django_durable.models import Run, Worker
from django_durable.testing import run_until_idle
from django_durable.testing.factories import RunFactory
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(databases=["default", "durable"])

CHANGELIST = "admin:django_durable_run_changelist"
OVERVIEW = "admin:django_durable_runoverview_changelist"


def detail_url(run_id):
    return reverse("admin:django_durable_run_change", args=[run_id])


def worker(worker_id, jobs_served):
    now = timezone.now()
    return Worker(
        worker_id=worker_id,
        hostname=worker_id.split(":")[0],
        pid=1,
        queues=None,
        jobs=jobs_served,
        concurrency=1,
        started_at=now,
        last_seen_at=now,
    )


@pytest.fixture
def on_alias(settings):
    settings.DURABLE = {**settings.DURABLE, "DATABASE": "durable"}


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_durable",
            codename__in=["view_run", "retry_run", "cancel_run", "send_event"],
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def decoy():
    """A run and a live worker on the default alias, which the admin must not show."""
    worker("decoy:1:aa", ["tests.echo"]).save(using="default")
    return RunFactory(job_name="tests.decoy", status=RunStatus.FAILED, finished_at=timezone.now())


@pytest.fixture
def failed(on_alias):
    handle = jobs.fails_first_attempt.enqueue()
    run_until_idle()
    # Written only to the second alias.
    assert Run.objects.using("durable").get(pk=handle.id).status == RunStatus.FAILED
    assert not Run.objects.using("default").filter(pk=handle.id).exists()
    return handle


def test_the_list_shows_the_alias_runs_only(operator, decoy, failed):
    html = operator.get(reverse(CHANGELIST)).content.decode()
    assert str(failed.id) in html and "tests.fails_first_attempt" in html
    assert str(decoy.pk) not in html and "tests.decoy" not in html
    # Filters and search go through the same queryset.
    html = operator.get(reverse(CHANGELIST), {"status__exact": "failed"}).content.decode()
    assert str(failed.id) in html and str(decoy.pk) not in html
    html = operator.get(reverse(CHANGELIST), {"q": str(failed.id)[:8]}).content.decode()
    assert str(failed.id) in html


def test_the_run_page_reads_steps_logs_events_and_children_from_the_alias(operator, on_alias):
    parent = jobs.fan_out.enqueue([2, 3])
    run_until_idle(max_runs=1)
    send_event(parent.id, "unrelated", {"x": 1})
    children = list(Run.objects.using("durable").filter(parent_id=parent.id))
    assert children
    html = operator.get(detail_url(parent.id)).content.decode()
    assert all(str(child.pk) in html for child in children)
    assert "unrelated" in html  # the event mailbox
    assert operator.get(detail_url(children[0].pk)).status_code == 200


def test_the_run_page_shows_the_journal_of_an_alias_run(operator, failed):
    html = operator.get(detail_url(failed.id)).content.decode()
    assert "first attempt fails" in html and "<td>one<details>" in html


def test_a_default_alias_run_is_not_found(operator, decoy, on_alias):
    assert operator.get(detail_url(decoy.pk)).status_code == 404


def test_actions_read_and_change_the_alias_runs(operator, decoy, failed):
    data = {"action": "retry_runs", "_selected_action": [str(failed.id)], "index": "0"}
    response = operator.post(reverse(CHANGELIST), data, follow=True)
    assert "Retried 1 run." in [str(m) for m in response.context["messages"]]
    assert Run.objects.using("durable").get(pk=failed.id).status == RunStatus.PENDING
    button = reverse("admin:django_durable_run_action", args=[failed.id, "cancel"])
    operator.post(button)
    assert Run.objects.using("durable").get(pk=failed.id).status == RunStatus.CANCELLED
    decoy.refresh_from_db()
    assert decoy.status == RunStatus.FAILED


def test_the_overview_counts_the_alias_runs_and_workers(operator, decoy, failed):
    worker("real:2:bb", ["tests.fails_first_attempt"]).save(using="durable")
    jobs.echo.enqueue(1)  # pending, and no live worker serves tests.echo on this alias
    response = operator.get(reverse(OVERVIEW))
    context = response.context
    counts = {row["value"]: row["count"] for row in context["statuses"]}
    assert counts["failed"] == 1 and counts["pending"] == 1
    assert {job["name"] for job in context["jobs"]} == {"tests.fails_first_attempt", "tests.echo"}
    assert context["failures_count"] == 1
    assert [row["run"].pk for row in context["failures"]] == [failed.id]
    assert sum(minute["total"] for minute in context["throughput"]) == 1
    assert context["oldest_pending_age"] is not None
    assert [row["job_name"] for row in context["unserved"]] == ["tests.echo"]
    assert [w.worker_id for w in context["live_workers"]] == ["real:2:bb"]
    assert context["dead_workers"] == []
    assert "decoy" not in response.content.decode()


def test_the_queryset_vocabulary(on_alias):
    now = timezone.now()
    runs = Run.objects.using("durable")
    pending = runs.create(job_name="tests.echo")
    due = runs.create(
        job_name="tests.echo", status=RunStatus.WAITING, wake_at=now - timedelta(seconds=1)
    )
    asleep = runs.create(
        job_name="tests.echo", status=RunStatus.WAITING, wake_at=now + timedelta(hours=1)
    )
    expired = runs.create(
        job_name="tests.echo", status=RunStatus.RUNNING, lease_expires_at=now - timedelta(minutes=1)
    )
    leased = runs.create(
        job_name="tests.echo", status=RunStatus.RUNNING, lease_expires_at=now + timedelta(minutes=1)
    )
    old_failure = runs.create(
        job_name="tests.echo", status=RunStatus.FAILED, finished_at=now - timedelta(days=2)
    )
    failure = runs.create(job_name="tests.echo", status=RunStatus.FAILED, finished_at=now)
    done = runs.create(job_name="tests.echo", status=RunStatus.COMPLETED, finished_at=now)

    def ids(queryset):
        return set(queryset.values_list("pk", flat=True))

    yesterday = now - timedelta(days=1)
    assert ids(runs.pending()) == {pending.pk}
    assert ids(runs.waiting()) == {due.pk, asleep.pk}
    assert ids(runs.running()) == {expired.pk, leased.pk}
    assert ids(runs.due()) == {due.pk}
    assert ids(runs.lease_expired()) == {expired.pk}
    assert ids(runs.failed()) == {old_failure.pk, failure.pk}
    assert ids(runs.failed_since(yesterday)) == {failure.pk}
    assert ids(runs.finished()) == {old_failure.pk, failure.pk, done.pk}
    assert ids(runs.finished_since(yesterday)) == {failure.pk, done.pk}
    assert ids(runs.unfinished()) == {pending.pk, due.pk, asleep.pk, expired.pk, leased.pk}
    assert not Run.objects.pending().exists()  # the default alias holds none of them
