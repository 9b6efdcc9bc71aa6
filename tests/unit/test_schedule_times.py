"""Cron times in a time zone, the catch-up rule, and @schedule's checks (no database)."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from django_durable import job, schedule
from django_durable.schedules import (
    LATE_GRACE,
    Cron,
    due_ticks,
    forget_schedule,
    registered_schedules,
)

PARIS = ZoneInfo("Europe/Paris")
SPRING = datetime(2026, 3, 29, tzinfo=PARIS)  # 02:00 CET becomes 03:00 CEST
AUTUMN = datetime(2026, 10, 25, tzinfo=PARIS)  # 03:00 CEST becomes 02:00 CET


def local_day(day):
    """(just before local midnight, the last instant before the next one), in UTC."""
    midnight = datetime.combine(day.date(), datetime.min.time(), tzinfo=PARIS)
    following = datetime.combine(day.date() + timedelta(days=1), datetime.min.time(), PARIS)
    return midnight.astimezone(UTC) - timedelta(microseconds=1), following.astimezone(
        UTC
    ) - timedelta(microseconds=1)


def in_paris(times):
    return [t.astimezone(PARIS).strftime("%H:%M%z") for t in times]


def ticks_of_the_day(expression, day, *, step):
    """The ticks a producer starts through one local day, looking every ``step``: the
    schedule's cursor moves to each look, as in storage."""
    cron = Cron(expression, "Europe/Paris")
    cursor, end = local_day(day)
    fired = []
    now = cursor
    while now < end:
        now = min(now + step, end)
        fired += due_ticks(cron, cursor=cursor, now=now, catchup=None)
        cursor = now
    return fired


@pytest.mark.parametrize("step", [timedelta(seconds=50), timedelta(minutes=7), timedelta(hours=1)])
def test_a_nonexistent_local_time_is_skipped_in_march(step):
    assert ticks_of_the_day("30 2 * * *", SPRING, step=step) == []
    assert in_paris(ticks_of_the_day("30 2 * * *", SPRING + timedelta(days=1), step=step)) == [
        "02:30+0200"
    ]


@pytest.mark.parametrize("step", [timedelta(seconds=50), timedelta(minutes=7), timedelta(hours=1)])
def test_an_ambiguous_local_time_fires_once_in_october(step):
    assert in_paris(ticks_of_the_day("30 2 * * *", AUTUMN, step=step)) == ["02:30+0200"]


@pytest.mark.parametrize("step", [timedelta(minutes=1), timedelta(minutes=25)])
def test_hourly_runs_23_times_in_march_and_25_in_october(step):
    spring = ticks_of_the_day("0 * * * *", SPRING, step=step)
    autumn = ticks_of_the_day("0 * * * *", AUTUMN, step=step)
    assert len(spring) == 23 and "02:00+0100" not in in_paris(spring)
    assert len(autumn) == 25
    assert in_paris(autumn)[2:4] == ["02:00+0200", "02:00+0100"]  # both passes of 02:00
    # One hour apart on the timeline, always: no tick twice, none missing.
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(autumn))
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(spring))


def test_six_fields_have_seconds_first():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert Cron("15 * * * * *").upcoming(start, 2) == [
        start + timedelta(seconds=15),
        start + timedelta(minutes=1, seconds=15),
    ]
    assert Cron("* * * * * *").upcoming(start, 3) == [
        start + timedelta(seconds=n) for n in (1, 2, 3)
    ]


def test_upcoming_times_follow_the_zone_and_stop_when_there_are_none():
    start = datetime(2026, 3, 27, 12, tzinfo=UTC)
    assert in_paris(Cron("30 2 * * *", "Europe/Paris").upcoming(start, 3)) == [
        "02:30+0100",  # 28 March
        "02:30+0200",  # 30 March: the 29th has no 02:30
        "02:30+0200",
    ]
    assert Cron("0 0 30 2 *").upcoming(start, 5) == []  # 30 February never comes


MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
EVERY_MINUTE = Cron("* * * * *")


def test_missed_ticks_are_skipped_but_the_latest():
    # Workers were down from 9:00 to 9:10: of the ten missed ticks only 9:10 starts.
    assert due_ticks(EVERY_MINUTE, cursor=T0, now=T0 + 10 * MINUTE, catchup=None) == [
        T0 + 10 * MINUTE
    ]
    # Then the schedule goes on tick by tick.
    assert due_ticks(EVERY_MINUTE, cursor=T0 + 10 * MINUTE, now=T0 + 11 * MINUTE, catchup=None) == [
        T0 + 11 * MINUTE
    ]


def test_catchup_starts_each_missed_tick_inside_its_window():
    window = timedelta(minutes=5, seconds=30)
    assert due_ticks(EVERY_MINUTE, cursor=T0, now=T0 + 10 * MINUTE, catchup=window) == [
        T0 + n * MINUTE for n in range(5, 11)
    ]
    wide = timedelta(hours=1)
    assert due_ticks(EVERY_MINUTE, cursor=T0, now=T0 + 10 * MINUTE, catchup=wide) == [
        T0 + n * MINUTE for n in range(1, 11)
    ]


def test_a_late_tick_is_not_a_missed_one():
    every_second = Cron("* * * * * *")
    late = T0 + LATE_GRACE - timedelta(seconds=2)
    # A worker that looked at 9:00:00 and again 8 s later starts all 8 ticks.
    assert due_ticks(every_second, cursor=T0, now=late, catchup=None) == [
        T0 + timedelta(seconds=n) for n in range(1, 9)
    ]


def test_nothing_is_due_before_the_first_tick():
    assert due_ticks(Cron("0 0 * * *"), cursor=T0, now=T0 + MINUTE, catchup=None) == []


# -- @schedule's checks ------------------------------------------------------------------


@pytest.fixture
def declared():
    """Schedules declared by a test, forgotten afterwards (workers of later tests would
    store them)."""
    before = set(registered_schedules())
    yield
    for name in set(registered_schedules()) - before:
        forget_schedule(name)


@job(name="tests.scheduled_report")
def report(ctx, kind, *, pages=1):
    return kind


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"cron": "61 * * * *"}, ValueError, "invalid cron '61 \\* \\* \\* \\*'"),
        ({"cron": "* * * *"}, ValueError, "has 4 fields: give 5"),
        ({"cron": "0 0 * * * * 2026"}, ValueError, "has 7 fields"),
        ({"cron": 5}, TypeError, "cron must be a string"),
        ({"timezone": "Europe/Pariss"}, ValueError, "unknown time zone 'Europe/Pariss'"),
        ({"timezone": ""}, ValueError, "IANA time zone name"),
        ({"overlap": "queue"}, ValueError, "overlap must be one of"),
        ({"catchup": timedelta(0)}, ValueError, "catchup must be positive"),
        ({"catchup": "1h"}, TypeError, "catchup must be a timedelta"),
        ({"args": (object(),)}, TypeError, "args"),
        ({"args": ("daily", float("nan"))}, TypeError, "pages|positional"),
        ({"kwargs": {"page": 2}}, TypeError, "unexpected keyword argument 'page'"),
        ({"args": (), "kwargs": None}, TypeError, "missing a required argument: 'kind'"),
        ({"name": "x" * 300}, ValueError, "the schedule name must be"),
    ],
)
def test_mistakes_are_refused_at_decoration(declared, options, error, message):
    options = {"cron": "0 6 * * *", "args": ("daily",), **options}
    cron = options.pop("cron")
    with pytest.raises(error, match=message):
        schedule(cron, **options)(report)
    assert not any(spec.job_name == report.name for spec in registered_schedules().values())


def test_a_json_value_that_cannot_be_stored_is_refused(declared):
    with pytest.raises(ValueError, match="nan, which JSON cannot represent"):
        schedule("0 6 * * *", args=("daily",), kwargs={"pages": float("nan")})(report)


def test_schedule_must_sit_above_job(declared):
    def plain(ctx):
        pass

    with pytest.raises(TypeError, match="stacked above @job"):
        schedule("0 6 * * *")(plain)


def test_several_schedules_per_job(declared):
    @schedule("0 6 * * *", args=("daily",), name="daily report")
    @schedule("0 7 * * 1", timezone="Europe/Paris", args=("weekly",), kwargs={"pages": 5})
    @job(name="tests.stacked_report")
    def stacked(ctx, kind, *, pages=1):
        return kind

    specs = {s.name: s for s in registered_schedules().values() if s.job_name == stacked.name}
    assert set(specs) == {"daily report", "tests.stacked_report:0 7 * * 1"}
    weekly = specs["tests.stacked_report:0 7 * * 1"]
    assert weekly.cron == Cron("0 7 * * 1", "Europe/Paris")
    assert weekly.args == ["weekly"] and weekly.kwargs == {"pages": 5}
    assert stacked.name == "tests.stacked_report"  # @schedule returns the job itself


def test_two_jobs_cannot_share_a_schedule_name(declared):
    schedule("0 6 * * *", name="shared", args=("daily",))(report)

    @job(name="tests.other_report")
    def other(ctx):
        pass

    with pytest.raises(ValueError, match="two schedules are named 'shared'"):
        schedule("0 6 * * *", name="shared")(other)


def test_a_cron_too_long_to_store_is_refused_and_one_that_never_fires_is_a_warning(declared):
    from django_durable.checks import check_schedules

    with pytest.raises(ValueError, match="cron must be a non-empty string of at most 255"):
        schedule(",".join(["0"] * 200) + " * * * *")(report)
    schedule("0 0 30 2 *", name="february-30th", args=("x",))(report)
    (warning,) = [m for m in check_schedules() if "february-30th" in m.msg]
    assert warning.id == "django_durable.W008" and "never fires" in warning.msg
    assert not [m for m in check_schedules() if "february-30th" not in m.msg]
