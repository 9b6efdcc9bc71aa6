"""The admin's fork: "Fork from here" on journal rows, the bulk action, links to forks."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from django_durable import RunStatus
from django_durable.models import Run, Step
from django_durable.testing import run_until_idle
from tests.testapp import fork_jobs
from tests.testapp.jobs import executions

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:django_durable_run_changelist")


@pytest.fixture(autouse=True)
def bug_not_fixed():
    fork_jobs.FIXED["on"] = False
    yield
    fork_jobs.FIXED["on"] = False


def login(client, django_user_model, *codenames, username="operator"):
    user = django_user_model.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_durable", codename__in=codenames)
    )
    client.force_login(user)
    return client


@pytest.fixture
def operator(client, django_user_model):
    return login(client, django_user_model, "view_run", "retry_run")


@pytest.fixture
def viewer(django_user_model):
    return login(Client(), django_user_model, "view_run", username="viewer")


def detail_url(run_id):
    return reverse("admin:django_durable_run_change", args=[run_id])


def fork_url(run_id, position):
    return reverse("admin:django_durable_run_fork", args=[run_id, position])


def failed_run(n=1):
    handle = fork_jobs.fork_three_steps.enqueue(n=n)
    run_until_idle()
    assert Run.objects.get(pk=handle.id).status == RunStatus.FAILED
    return handle


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def test_journal_rows_offer_fork_from_here(operator, viewer):
    old = failed_run()
    page = operator.get(detail_url(old.id)).content.decode()
    for position in range(3):
        assert f'href="{fork_url(old.id, position)}"' in page
    # Without the permission retrying takes, no link.
    assert "Fork from here" not in viewer.get(detail_url(old.id)).content.decode()


def test_the_confirmation_page_shows_what_is_kept_and_what_runs_again(operator):
    old = failed_run()
    response = operator.get(fork_url(old.id, 1))
    assert response.status_code == 200
    page = response.content.decode()
    kept = page.split('class="durable-fork-kept"')[1].split("</ul>")[0]
    again = page.split('class="durable-fork-again"')[1].split("</ul>")[0]
    assert "<strong>one</strong>" in kept and "two" not in kept
    assert "<strong>two</strong>" in again and "<strong>three</strong>" in again
    assert 'name="csrfmiddlewaretoken"' in page and 'name="apply"' in page
    assert Run.objects.count() == 1  # a GET forks nothing


def test_posting_the_confirmation_forks_and_links_the_runs(operator):
    old = failed_run(n=3)
    fork_jobs.FIXED["on"] = True
    response = operator.post(fork_url(old.id, 2), {"apply": "1"}, follow=True)
    fork = Run.objects.get(forked_from=old.id)
    assert response.redirect_chain[-1][0] == detail_url(fork.pk)
    assert any(f"the fork is run {fork.pk}" in text for text in messages_of(response))
    assert [step.name for step in Step.objects.filter(run=fork).order_by("position")] == [
        "one",
        "two",
    ]
    run_until_idle()
    fork.refresh_from_db()
    assert fork.status == RunStatus.COMPLETED and fork.output == [3, 6, "three fixed"]
    assert executions(fork.pk, "one") == executions(fork.pk, "two") == 0
    assert LogEntry.objects.filter(object_id=str(old.id), change_message__contains="Forked")
    # Each run's page links to the other.
    fork_page = operator.get(detail_url(fork.pk)).content.decode()
    assert "Forked from" in fork_page and f'href="{detail_url(old.id)}"' in fork_page
    old_page = operator.get(detail_url(old.id)).content.decode()
    assert "<h2>Forks</h2>" in old_page and f'href="{detail_url(fork.pk)}"' in old_page


def test_a_user_without_the_permission_gets_403(viewer):
    old = failed_run()
    assert viewer.get(fork_url(old.id, 0)).status_code == 403
    assert viewer.post(fork_url(old.id, 0), {"apply": "1"}).status_code == 403
    assert not Run.objects.filter(forked_from=old.id).exists()


def test_the_page_refuses_what_fork_run_refuses(operator):
    old = failed_run()
    response = operator.get(fork_url(old.id, 9))
    assert response.status_code == 200
    page = response.content.decode()
    assert "cannot be forked from here" in page and "out of range" in page
    assert 'name="apply"' not in page
    operator.post(fork_url(old.id, 9), {"apply": "1"})
    waiting = fork_jobs.fork_events.enqueue()
    run_until_idle()
    page = operator.get(fork_url(waiting.id, 0)).content.decode()
    assert "it is waiting, not finished" in page
    operator.post(fork_url(waiting.id, 0), {"apply": "1"})
    assert not Run.objects.filter(forked_from__isnull=False).exists()
    assert operator.get(fork_url("01234567-89ab-cdef-0123-456789abcdef", 0)).status_code == 404


def test_names_are_escaped_on_the_confirmation_page(operator):
    old = failed_run()
    Step.objects.filter(run_id=old.id, position=0).update(name="<script>alert(1)</script>")
    page = operator.get(fork_url(old.id, 1)).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_bulk_fork_from_failure_reports_forked_and_refused(operator):
    failed = [failed_run(n) for n in (1, 2)]
    waiting = fork_jobs.fork_events.enqueue()
    run_until_idle()
    fork_jobs.FIXED["on"] = True
    data = {
        "action": "fork_from_failure",
        "_selected_action": [str(run.id) for run in [*failed, waiting]],
        "index": "0",
    }
    response = operator.post(CHANGELIST, data, follow=True)
    texts = messages_of(response)
    assert "Forked 2 runs." in texts
    (refused,) = [text for text in texts if text.startswith("Refused")]
    assert f"Refused 1 run: {waiting.id}: it is waiting, not finished" in refused
    forks = Run.objects.filter(forked_from__in=[run.id for run in failed])
    assert forks.count() == 2
    run_until_idle()
    assert set(forks.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    assert sorted(fork.output[0] for fork in forks) == [1, 2]


def test_bulk_fork_needs_the_permission(viewer):
    old = failed_run()
    data = {"action": "fork_from_failure", "_selected_action": [str(old.id)], "index": "0"}
    assert viewer.post(CHANGELIST, data).status_code == 403
    assert not Run.objects.filter(forked_from=old.id).exists()
