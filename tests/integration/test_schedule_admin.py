"""The schedules admin: create and edit with validation, the preview, enable and disable,
run now, and the run list filtered by schedule (test client)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from django_durable.conf import durable_settings
from django_durable.models import Run, Schedule, ScheduleTick
from django_durable.status import TickStatus
from django_durable.storage import get_storage
from django_durable.storage.schedules import produce_ticks
from django_durable.testing import run_until_idle
from tests.integration.test_admin import staff
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

ADD = reverse("admin:django_durable_schedule_add")
LIST = reverse("admin:django_durable_schedule_changelist")
PERMISSIONS = ("view_schedule", "add_schedule", "change_schedule", "run_schedule", "view_run")


@pytest.fixture
def operator(client, django_user_model):
    client.force_login(staff(django_user_model, *PERMISSIONS))
    return client


def form(**changes):
    return {
        "name": "hourly tick",
        "job_name": jobs.tick.name,
        "cron": "0 * * * *",
        "timezone": "Europe/Paris",
        "args": "[]",
        "kwargs": '{"label": "from the admin"}',
        "overlap": "allow",
        "catchup": "",
        "enabled": "on",
        **changes,
    }


def change_url(schedule):
    return reverse("admin:django_durable_schedule_change", args=[schedule.pk])


def produce(schedule, now):
    return produce_ticks(
        durable_settings.DATABASE, schedule.pk, now=now, jobs={jobs.tick.name: jobs.tick}
    )


def test_a_schedule_created_in_the_admin_fires_and_a_disabled_one_does_not(operator):
    response = operator.post(ADD, form())
    assert response.status_code == 302, response.context["adminform"].form.errors
    schedule = Schedule.objects.get(name="hourly tick")
    assert not schedule.from_code and schedule.last_tick_at is not None
    now = get_storage().now()
    produce(schedule, now)  # the first look computes the next fire time
    schedule.refresh_from_db()
    assert schedule.next_fire_at > now
    produce(schedule, schedule.next_fire_at)
    (run,) = Run.objects.filter(schedule_tick__schedule=schedule)
    assert run.scheduled_at == schedule.next_fire_at and run.kwargs == {"label": "from the admin"}

    response = operator.post(
        LIST, {"action": "disable", "_selected_action": [schedule.pk]}, follow=True
    )
    assert "Disabled 1 schedule(s)." in response.text
    schedule.refresh_from_db()
    assert not schedule.enabled
    produce(schedule, schedule.next_fire_at + timedelta(hours=1))
    assert Run.objects.count() == 1

    operator.post(LIST, {"action": "enable", "_selected_action": [schedule.pk]})
    schedule.refresh_from_db()
    assert schedule.enabled and schedule.next_fire_at is None  # recomputed by a worker


def test_an_edit_counts_from_now_and_the_page_previews_five_fire_times(operator):
    operator.post(ADD, form())
    schedule = Schedule.objects.get()
    Schedule.objects.filter(pk=schedule.pk).update(
        last_tick_at=schedule.last_tick_at - timedelta(days=1)
    )
    response = operator.post(change_url(schedule), form(cron="30 2 * * *"))
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.cron == "30 2 * * *" and schedule.next_fire_at is None
    assert schedule.last_tick_at > get_storage().now() - timedelta(minutes=1)
    page = operator.get(change_url(schedule)).text
    assert "Next 5 fire times" in page
    assert page.count(" 02:30:00 CE") == 5  # CET or CEST, in the schedule's zone


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "invalid cron"),
        ({"cron": "* * *"}, "cron", "has 3 fields"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"job_name": "tests.nowhere"}, "job_name", "No job named"),
        ({"kwargs": '{"colour": "red"}'}, "__all__", "unexpected keyword argument"),
        ({"args": '{"a": 1}'}, "args", "must be a JSON list"),
        ({"catchup": "0"}, "catchup", "positive"),
    ],
)
def test_invalid_definitions_are_form_errors(operator, changes, field, message):
    response = operator.post(ADD, form(**changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field]), errors
    assert not Schedule.objects.exists()


def test_run_now_starts_one_run_marked_manual_and_the_run_list_filters_by_schedule(
    operator,
):
    operator.post(ADD, form(cron="0 0 1 1 *"))
    schedule = Schedule.objects.get()
    response = operator.post(
        LIST, {"action": "run_now", "_selected_action": [schedule.pk]}, follow=True
    )
    assert "Started 1 run(s)." in response.text
    tick = ScheduleTick.objects.get(schedule=schedule)
    assert tick.status == TickStatus.MANUAL and tick.run.scheduled_at == tick.scheduled_at
    Run.objects.create(job_name=jobs.tick.name)  # a run no schedule started
    runs = operator.get(reverse("admin:django_durable_run_changelist") + f"?schedule={schedule.pk}")
    assert str(tick.run_id) in runs.text
    assert runs.context["cl"].result_count == 1
    run_until_idle()
    tick.run.refresh_from_db()
    assert tick.run.output["label"] == "from the admin"
    listing = operator.get(LIST).text
    assert str(tick.run_id) in listing  # the last run column links it


def test_run_now_needs_its_permission(client, django_user_model):
    client.force_login(staff(django_user_model, "view_schedule", "add_schedule", "change_schedule"))
    client.post(ADD, form())
    schedule = Schedule.objects.get()
    assert 'value="run_now"' not in client.get(LIST).text
    client.post(LIST, {"action": "run_now", "_selected_action": [schedule.pk]})
    assert not Run.objects.exists()


def test_a_code_schedule_has_only_enabled_to_edit(operator):
    schedule = Schedule.objects.create(
        name="from code", job_name=jobs.tick.name, cron="0 6 * * *", from_code=True
    )
    response = operator.post(change_url(schedule), {"enabled": ""})
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert not schedule.enabled and schedule.cron == "0 6 * * *"
    assert "code" in operator.get(LIST).text
