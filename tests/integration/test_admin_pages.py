"""The admin pages as a new user on Django 6.1 found them: breadcrumbs, exact times, the
operation that failed a run, stale progress and what a waiting run waits for."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.status import StepKind, StepStatus
from django_durable.testing.factories import RunFactory, StepFactory

pytestmark = pytest.mark.django_db

BREADCRUMBS = re.compile(r'<(ol|div) class="breadcrumbs">(.*?)</\1>', re.S)


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_durable"))
    client.force_login(user)
    return client


def detail_url(run_id):
    return reverse("admin:django_durable_run_change", args=[run_id])


def breadcrumbs(client, url, data=None):
    response = client.post(url, data) if data else client.get(url)
    assert response.status_code == 200, url
    found = BREADCRUMBS.findall(response.content.decode())
    assert len(found) == 1, url
    tag, crumbs = found[0]
    text = re.sub(r"<[^>]+>|&rsaquo;", " ", crumbs)  # 5.2 separates crumbs with &rsaquo;
    return tag, re.sub(r"\s+", " ", text).strip()


def test_breadcrumbs_are_drawn_as_the_installed_django_draws_its_own(operator):
    # Django's own app page shows which markup (and so which CSS) this version has:
    # <div class="breadcrumbs"> on 5.2, <ol class="breadcrumbs"> on 6.1.
    django_tag, _ = breadcrumbs(operator, reverse("admin:app_list", args=["django_durable"]))
    waiting = RunFactory(status=RunStatus.WAITING, waiting_for={"event": "approval"})
    done = RunFactory(completed=True)
    pages = {
        detail_url(waiting.pk): f"Home Durable runs Runs {waiting}",
        reverse("admin:django_durable_runoverview_changelist"): "Home Durable runs Overview",
        reverse("admin:django_durable_run_action", args=[waiting.pk, "send_event"]): (
            f"Home Durable runs Runs {waiting}"
        ),
        reverse("admin:django_durable_run_action", args=[done.pk, "restart"]): (
            f"Home Durable runs Runs {done}"
        ),
    }
    for url, expected in pages.items():
        assert breadcrumbs(operator, url) == (django_tag, expected), url
    from_the_list = {"action": "restart_runs", "_selected_action": [str(done.pk)], "index": "0"}
    changelist = reverse("admin:django_durable_run_changelist")
    assert breadcrumbs(operator, changelist, from_the_list) == (
        django_tag,
        "Home Durable runs Runs",
    )


def test_times_are_shown_to_the_second_with_durations(operator):
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    run = RunFactory(completed=True)
    Run.objects.filter(pk=run.pk).update(
        created_at=created,
        started_at=created + timedelta(seconds=2),
        finished_at=created + timedelta(seconds=9, milliseconds=500),
    )
    html = operator.get(detail_url(run.pk)).content.decode()
    assert '<time datetime="2026-01-02T03:04:05+00:00">2026-01-02 03:04:05 UTC</time>' in html
    assert "2026-01-02 03:04:07 UTC" in html and "(2.0 s after it was created)" in html
    assert "2026-01-02 03:04:14 UTC" in html and "7.5 s" in html  # finished, duration
    listed = operator.get(reverse("admin:django_durable_run_changelist")).content.decode()
    assert "Jan 2, 03:04:05" in listed and "Jan 2, 03:04:14" in listed


def test_a_run_failed_by_its_children_shows_the_wait_that_raised(operator):
    child = RunFactory(failed=True, job_name="tests.square")
    error = {
        "attempt": 1,
        "type": "django_durable.exceptions.ChildRunFailed",
        "message": "1 child run(s) did not complete",
        "traceback": "Traceback ...",
    }
    parent = RunFactory(failed=True, errors=[error], progress={"done": 3, "total": 4})
    StepFactory(run=parent, position=0, kind=StepKind.CHILDREN, name="tests.square")
    StepFactory(
        run=parent,
        position=1,
        kind=StepKind.WAIT_CHILDREN,
        name="children",
        result={
            "outputs": [None],
            "failed": [
                {
                    "id": str(child.pk),
                    "status": "failed",
                    "error": {"type": "builtins.ValueError", "message": "<b>negative</b>"},
                }
            ],
        },
    )
    html = operator.get(detail_url(parent.pk)).content.decode()
    rows = re.findall(r'<tr class="durable-step-(\w+)">', html)
    assert rows == ["completed", "failed"]
    assert "<strong>ChildRunFailed</strong> raised here" in html
    assert f'href="{detail_url(child.pk)}"' in html
    assert "&lt;b&gt;negative&lt;/b&gt;" in html and "<b>negative" not in html
    assert html.count('class="durable-bar durable-failed"') == 1


def test_a_timed_out_event_wait_is_shown_as_raising(operator):
    run = RunFactory(failed=True)
    StepFactory(
        run=run,
        kind=StepKind.EVENT,
        name="approval",
        result={"timeout": True, "deadline": "2026-01-01T00:00:00+00:00"},
    )
    html = operator.get(detail_url(run.pk)).content.decode()
    assert "<strong>EventTimeout</strong> raised here" in html


def test_a_finished_runs_progress_is_marked_as_the_last_reported(operator):
    failed = RunFactory(failed=True, progress={"done": 3, "total": 4, "message": "three"})
    html = operator.get(detail_url(failed.pk)).content.decode()
    assert "Last progress" in html and "not current" in html and "durable-stale" in html
    running = RunFactory(
        status=RunStatus.RUNNING,
        started_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(seconds=30),
        progress={"done": 3, "total": 4, "message": "three"},
    )
    html = operator.get(detail_url(running.pk)).content.decode()
    assert "<th>Progress</th>" in html and "not current" not in html


@pytest.mark.parametrize(
    ("waiting_for", "step", "expected"),
    [
        ({"event": "<approval>"}, None, "the event <code>&lt;approval&gt;</code>"),
        ({"children": ["a", "b"]}, None, "2 child runs to finish"),
        (None, (StepKind.SLEEP, "nap"), "the end of the sleep <code>nap</code>"),
        (None, (StepKind.STEP, "charge"), "the next attempt of the step <code>charge</code>"),
        ({"odd": "<x>"}, None, "<code>{&quot;odd&quot;: &quot;&lt;x&gt;&quot;}</code>"),
    ],
)
def test_waiting_for_is_said_in_words(operator, waiting_for, step, expected):
    run = RunFactory(
        status=RunStatus.WAITING,
        waiting_for=waiting_for,
        wake_at=timezone.now() + timedelta(minutes=5),
    )
    if step:
        StepFactory(run=run, kind=step[0], name=step[1], status=StepStatus.WAITING)
    html = operator.get(detail_url(run.pk)).content.decode()
    assert f"<tr><th>Waiting for</th><td>{expected}, until <time" in html
    assert "{&#x27;" not in html  # no Python dict repr


# -- the send-event form ------------------------------------------------------------------


def send_event_url(run_id):
    return reverse("admin:django_durable_run_action", args=[run_id, "send_event"])


def test_the_send_event_form_offers_the_name_the_run_waits_for(operator):
    run = RunFactory(status=RunStatus.WAITING, waiting_for={"event": "<approval>"})
    html = operator.get(send_event_url(run.pk)).content.decode()
    assert 'name="name" value="&lt;approval&gt;"' in html
    assert '<option value="&lt;approval&gt;">' in html and 'list="durable-awaited-names"' in html
    assert "Awaited by the selected runs: &#x27;&lt;approval&gt;&#x27;." in html
    assert "<approval>" not in html


def test_another_name_is_sent_only_after_a_warning(operator):
    from django_durable.models import RunEvent

    run = RunFactory(status=RunStatus.WAITING, waiting_for={"event": "approval"})
    url = send_event_url(run.pk)
    warned = operator.post(url, {"name": "aproval", "payload": "1", "apply": "1"})
    html = warned.content.decode()
    assert warned.status_code == 200
    assert "This run waits for &#x27;approval&#x27;, not &#x27;aproval&#x27;." in html
    assert 'value="Send anyway"' in html and 'name="confirmed_name" value="aproval"' in html
    assert not RunEvent.objects.filter(run_id=run.pk).exists()
    # The operator changed the name after the warning: warned again for the new one.
    again = operator.post(
        url, {"name": "approved", "payload": "1", "apply": "1", "confirmed_name": "aproval"}
    )
    assert again.status_code == 200 and b"not &#x27;approved&#x27;" in again.content
    sent = operator.post(
        url, {"name": "aproval", "payload": "1", "apply": "1", "confirmed_name": "aproval"}
    )
    assert sent.status_code == 302
    assert list(RunEvent.objects.filter(run_id=run.pk).values_list("name", flat=True)) == [
        "aproval"
    ]
    assert Run.objects.get(pk=run.pk).status == RunStatus.WAITING  # still waiting


def test_the_awaited_name_is_sent_without_a_warning(operator):
    run = RunFactory(status=RunStatus.WAITING, waiting_for={"event": "approval"})
    sent = operator.post(send_event_url(run.pk), {"name": "approval", "apply": "1"})
    assert sent.status_code == 302
    assert Run.objects.get(pk=run.pk).status == RunStatus.PENDING  # woken


def test_a_running_run_is_warned_about_too(operator):
    run = RunFactory(status=RunStatus.RUNNING, started_at=timezone.now())
    warned = operator.post(send_event_url(run.pk), {"name": "later", "apply": "1"})
    assert b"This run is not waiting for an event, not &#x27;later&#x27;." in warned.content


def test_from_the_list_the_warning_counts_the_runs_not_waiting_for_it(operator):
    first = RunFactory(status=RunStatus.WAITING, waiting_for={"event": "approval"})
    second = RunFactory(status=RunStatus.WAITING, waiting_for={"event": "payment"})
    data = {
        "action": "send_event_to_runs",
        "_selected_action": [str(first.pk), str(second.pk)],
        "name": "approval",
        "apply": "1",
    }
    changelist = reverse("admin:django_durable_run_changelist")
    warned = operator.post(changelist, data)
    assert warned.status_code == 200
    assert b"1 of these 2 runs are not waiting for &#x27;approval&#x27;" in warned.content
    sent = operator.post(changelist, {**data, "confirmed_name": "approval"})
    assert sent.status_code == 302
    assert Run.objects.get(pk=first.pk).status == RunStatus.PENDING
    assert Run.objects.get(pk=second.pk).status == RunStatus.WAITING


# -- search -----------------------------------------------------------------------------


def searched(client, term):
    response = client.get(reverse("admin:django_durable_run_changelist"), {"q": term})
    assert response.status_code == 200
    return {run.pk for run in response.context["cl"].result_list}


def test_search_finds_runs_by_an_argument_value(operator):
    invoice = RunFactory(args=["INV-2024-001", 7], kwargs={"customer": "Zoë Martin", "n": 42})
    other = RunFactory(args=["INV-2024-002"], kwargs={"customer": "Bob", "n": "42"})
    assert searched(operator, "inv-2024-001") == {invoice.pk}  # case-insensitive substring
    assert searched(operator, "INV-2024") == {invoice.pk, other.pk}
    assert searched(operator, "Zoë") == {invoice.pk}  # however the database spells JSON
    assert searched(operator, "customer=Bob") == {other.pk}
    assert searched(operator, "customer=bob") == set()  # a keyword's value is exact
    assert searched(operator, 'customer="Zoë Martin"') == {invoice.pk}
    assert searched(operator, "n=42") == {invoice.pk, other.pk}  # 42 and "42"
    assert searched(operator, 'n="42"') == {other.pk}
    assert searched(operator, "missing=1") == set()
    assert searched(operator, "nothing-like-it") == set()


def test_search_by_keyword_also_matches_keys(operator):
    keyed = RunFactory(idempotency_key="order=17")
    assert searched(operator, "order=17") == {keyed.pk}


# -- the list ---------------------------------------------------------------------------


def test_the_list_is_a_few_narrow_columns(operator):
    RunFactory(
        status=RunStatus.RUNNING,
        attempt=2,
        job_name="tests.<many>.steps",
        started_at=timezone.now(),
        progress={"done": 1, "total": 4, "message": "<one>"},
    )
    html = operator.get(reverse("admin:django_durable_run_changelist")).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*column-(\w+)', html)
    assert headers == ["run_id", "status_badge", "job", "queue", "created", "ran", "run_duration"]
    # Progress and attempt under the badge; the id and the job break only at chosen places.
    assert 'title="&lt;one&gt;"><span style="width:25.0%">' in html
    assert '<span class="durable-attempt">attempt 2</span>' in html
    assert "<span>tests.</span><wbr><span>&lt;many&gt;.</span><wbr><span>steps</span>" in html
    assert re.search(r"<span>[0-9a-f-]{19}</span><wbr><span>[0-9a-f-]{17}</span>", html)


def test_a_failed_runs_page_title_is_not_a_form_error(operator):
    run = RunFactory(failed=True)
    html = operator.get(detail_url(run.pk)).content.decode()
    title = re.search(r"<title>(.*?)</title>", html).group(1)
    assert not title.startswith("Error")
    assert "ValueError" in html and "boom" in html  # the run's errors are still shown
