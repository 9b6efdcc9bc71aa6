"""Schedules in the database: code sync, ticks into runs with a fixed clock, exactly once."""

import io
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_durable import signals
from django_durable.conf import durable_settings
from django_durable.models import Run, Schedule, ScheduleTick
from django_durable.scheduler import Scheduler
from django_durable.schedules import Cron, ScheduleSpec
from django_durable.status import TickStatus
from django_durable.storage.schedules import due_schedules, produce_ticks, sync_schedules
from django_durable.testing import run_until_idle
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
JOBS = {jobs.tick.name: jobs.tick}
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def alias():
    return durable_settings.DATABASE


def make(cron="* * * * *", *, cursor=T0, **options):
    return Schedule.objects.create(
        name=options.pop("name", f"every {cron}"),
        job_name=jobs.tick.name,
        cron=cron,
        last_tick_at=cursor,
        **options,
    )


def produce(row, now):
    return produce_ticks(alias(), row.pk, now=now, jobs=JOBS)


def scheduled(row):
    """The tick times of the runs a schedule started, in order."""
    return list(
        Run.objects.filter(schedule_tick__schedule=row)
        .order_by("scheduled_at")
        .values_list("scheduled_at", flat=True)
    )


def spec(name, cron="0 6 * * *", **options):
    return ScheduleSpec(
        name=name,
        job_name=jobs.tick.name,
        cron=Cron(cron, options.pop("timezone", "UTC")),
        args=options.pop("args", []),
        kwargs=options.pop("kwargs", {}),
        **options,
    )


# -- sync ----------------------------------------------------------------------------------


def test_code_schedules_are_created_updated_and_disabled_by_name():
    assert sync_schedules(alias(), {"a": spec("a"), "b": spec("b")}) == (2, 0, 0)
    assert sync_schedules(alias(), {"a": spec("a"), "b": spec("b")}) == (0, 0, 0)
    a = Schedule.objects.get(name="a")
    assert a.from_code and a.enabled and not a.removed_from_code and a.last_tick_at
    Schedule.objects.filter(name="a").update(next_fire_at=T0)
    # "a" changes its cron, "b" leaves the code: it is kept, marked, and no longer due.
    assert sync_schedules(alias(), {"a": spec("a", "30 7 * * *", timezone="Europe/Paris")}) == (
        0,
        1,
        1,
    )
    a.refresh_from_db()
    assert (a.cron, a.timezone, a.next_fire_at) == ("30 7 * * *", "Europe/Paris", None)
    b = Schedule.objects.get(name="b")
    assert b.removed_from_code and b.enabled
    assert due_schedules(alias(), JOBS, T0) == [a.pk]
    # Back in the code: firing again.
    assert sync_schedules(
        alias(), {"a": spec("a", "30 7 * * *", timezone="Europe/Paris"), "b": spec("b")}
    ) == (0, 1, 0)
    assert not Schedule.objects.get(name="b").removed_from_code


def test_admin_schedules_are_left_alone_by_the_sync():
    made = make(name="by hand")
    assert sync_schedules(alias(), {}) == (0, 0, 0)
    made.refresh_from_db()
    assert not made.removed_from_code and not made.from_code


# -- ticks into runs -----------------------------------------------------------------------


def test_each_due_tick_becomes_one_run_that_sees_its_time():
    row = make("*/5 * * * *", kwargs={"label": "five"})
    produced = produce(row, T0 + 5 * MINUTE)
    assert [at for at, _ in produced.started] == [T0 + 5 * MINUTE]
    assert produce(row, T0 + 5 * MINUTE).started == []  # the same clock again: nothing
    row.refresh_from_db()
    assert (row.last_tick_at, row.next_fire_at) == (T0 + 5 * MINUTE, T0 + 10 * MINUTE)
    run = Run.objects.get(schedule_tick__schedule=row)
    assert run.scheduled_at == T0 + 5 * MINUTE and run.kwargs == {"label": "five"}
    assert run_until_idle() == 1
    run.refresh_from_db()
    assert run.output == {"label": "five", "scheduled_at": (T0 + 5 * MINUTE).isoformat()}


def test_a_tick_stored_already_starts_no_second_run_and_spoils_nothing_else():
    """Two producers meeting on a tick: the unique constraint decides, in a savepoint."""
    row = make("* * * * *", catchup=timedelta(minutes=10))
    # Another producer stored 9:02 and its run, and has not moved the cursor yet.
    other = Run.objects.create(job_name=jobs.tick.name, scheduled_at=T0 + 2 * MINUTE)
    ScheduleTick.objects.create(
        schedule=row, scheduled_at=T0 + 2 * MINUTE, status=TickStatus.STARTED, run=other
    )
    with transaction.atomic():  # as inside a caller's transaction: it must stay usable
        produced = produce(row, T0 + 3 * MINUTE)
        assert Schedule.objects.filter(pk=row.pk).exists()
    assert [at for at, _ in produced.started] == [T0 + MINUTE, T0 + 3 * MINUTE]
    assert scheduled(row) == [T0 + n * MINUTE for n in (1, 2, 3)]
    assert Run.objects.filter(scheduled_at=T0 + 2 * MINUTE).count() == 1


def test_missed_ticks_are_skipped_but_the_latest_without_catchup():
    row = make("* * * * *")
    produce(row, T0 + 10 * MINUTE)  # all workers were down for ten ticks
    assert scheduled(row) == [T0 + 10 * MINUTE]
    produce(row, T0 + 11 * MINUTE)
    assert scheduled(row) == [T0 + 10 * MINUTE, T0 + 11 * MINUTE]


def test_catchup_starts_each_missed_tick_in_its_window_once():
    row = make("* * * * *", catchup=timedelta(minutes=30))
    produce(row, T0 + 10 * MINUTE)
    produce(row, T0 + 10 * MINUTE + timedelta(seconds=5))  # a second producer, later
    assert scheduled(row) == [T0 + n * MINUTE for n in range(1, 11)]


def test_overlap_skip_records_ticks_while_the_previous_run_is_unfinished():
    row = make("* * * * *", overlap="skip")
    produce(row, T0 + MINUTE)
    produce(row, T0 + 2 * MINUTE)
    produce(row, T0 + 3 * MINUTE)
    assert scheduled(row) == [T0 + MINUTE]
    ticks = ScheduleTick.objects.filter(schedule=row, status=TickStatus.SKIPPED)
    assert [t.scheduled_at for t in ticks] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert all("previous run is unfinished" in t.reason and t.run_id is None for t in ticks)
    run_until_idle()
    produce(row, T0 + 4 * MINUTE)
    assert scheduled(row) == [T0 + MINUTE, T0 + 4 * MINUTE]


def test_a_disabled_schedule_and_a_job_this_worker_lacks_produce_nothing():
    off = make(name="off", enabled=False)
    unknown = make(name="unknown")
    Schedule.objects.filter(pk=unknown.pk).update(job_name="tests.not_here")
    assert due_schedules(alias(), JOBS, T0 + MINUTE) == []
    assert produce(off, T0 + MINUTE).started == []
    assert produce(unknown, T0 + MINUTE).started == []
    assert not Run.objects.exists()


def test_arguments_that_no_longer_fit_skip_the_tick_with_the_reason():
    row = make(kwargs={"colour": "red"})
    produce(row, T0 + MINUTE)
    tick = ScheduleTick.objects.get(schedule=row)
    assert tick.status == TickStatus.SKIPPED
    assert "unexpected keyword argument 'colour'" in tick.reason
    assert not Run.objects.exists()


def test_a_broken_stored_cron_is_reported_and_retried_later():
    row = make()
    Schedule.objects.filter(pk=row.pk).update(cron="not a cron")
    produced = produce(row, T0 + MINUTE)
    assert "has 3 fields" in produced.problem
    row.refresh_from_db()
    assert row.next_fire_at > timezone.now()  # by the database clock, a minute on
    assert not Run.objects.exists()


def test_pruning_a_scheduled_run_takes_its_tick_row():
    row = make()
    produce(row, T0 + MINUTE)
    run_until_idle()
    Run.objects.update(finished_at=timezone.now() - timedelta(days=30))
    call_command("prune_runs", "--older-than", "1d", stdout=io.StringIO())
    assert not Run.objects.exists() and not ScheduleTick.objects.exists()


# -- time zones through the database, with a fixed clock -----------------------------------


def day_in_paris(row, day, *, step):
    """Produce ticks through one local day in Paris, the clock moving by ``step``."""
    midnight = datetime.combine(day, datetime.min.time(), tzinfo=PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), PARIS).astimezone(UTC)
    Schedule.objects.filter(pk=row.pk).update(
        last_tick_at=midnight - timedelta(microseconds=1), next_fire_at=None
    )
    now = midnight
    while now < end:
        produce(row, now)
        now += step
    return [t for t in scheduled(row) if midnight <= t < end]


@pytest.mark.parametrize(
    ("day", "daily", "hourly"),
    [
        (datetime(2026, 3, 29).date(), [], 23),
        (datetime(2026, 10, 25).date(), ["02:30+0200"], 25),
        (datetime(2026, 6, 1).date(), ["02:30+0200"], 24),
    ],
)
def test_europe_paris_transitions(day, daily, hourly):
    at_half_past_two = make("30 2 * * *", name="daily", timezone="Europe/Paris")
    every_hour = make("0 * * * *", name="hourly", timezone="Europe/Paris")
    runs = day_in_paris(at_half_past_two, day, step=timedelta(minutes=10))
    assert [t.astimezone(PARIS).strftime("%H:%M%z") for t in runs] == daily
    assert len(day_in_paris(every_hour, day, step=timedelta(minutes=10))) == hourly


def test_a_worker_stores_its_code_schedules_and_signals_each_tick():
    scheduler = Scheduler("test-worker", JOBS, {"each second": spec("each second", "* * * * * *")})
    seen = []

    def receiver(sender, **kwargs):
        seen.append(kwargs)

    signals.tick_started.connect(receiver)
    try:
        scheduler.produce_if_due(0.0)
        row = Schedule.objects.get(name="each second")
        time.sleep(1.1)
        scheduler.produce_if_due(0.5)  # not yet a second later by its monotonic clock
        assert seen == []
        scheduler.produce_if_due(1.0)
    finally:
        signals.tick_started.disconnect(receiver)
    assert seen and all(s["schedule"] == row.pk for s in seen)
    assert [s["scheduled_at"] for s in seen] == scheduled(row)


def test_a_long_catchup_goes_on_over_several_passes_each_tick_once():
    cursor = T0 - timedelta(days=20)  # every second of 20 days missed, all in the window
    row = make("* * * * * *", catchup=timedelta(days=30), cursor=cursor)
    started = time.monotonic()
    counts = [len(produce(row, T0).started) for _ in range(3)]
    assert time.monotonic() - started < 10  # each pass looks at its 100 ticks, not 20 days
    assert counts == [100, 100, 100]
    assert scheduled(row) == [cursor + timedelta(seconds=n) for n in range(1, 301)]
