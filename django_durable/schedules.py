"""``@schedule``, the schedules declared in code, and cron times in a schedule's time zone.

The only module that imports croniter. Times are computed on local wall-clock times in
the schedule's IANA zone and then placed on the timeline: a local time that does not
exist (the hour skipped when clocks go forward) is skipped; one that occurs twice (the
hour repeated when clocks go back) fires once, at its first occurrence, except for
schedules whose hour field is ``*``, which follow elapsed time as cron does: an hourly
schedule runs in both passes of the repeated hour (25 runs that day, 23 in spring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from .durations import Duration, optional_timedelta
from .jobs import Job
from .payloads import check_name, stored_args, stored_kwargs

OVERLAP_POLICIES = ("allow", "skip")
# Offsets never change by more than this at once: how far around a transition to look.
_MAX_SHIFT = timedelta(hours=2)
# How far ahead a next fire time is looked for before the expression is deemed to never
# fire again (a 29 February schedule fires once in four years, 30 February never).
_HORIZON = timedelta(days=366 * 5)
_FIRST_LOOK = timedelta(minutes=1)
# A tick less late than this is late, not missed, and always starts: workers produce
# ticks about once a second, later while busy or reconnecting.
LATE_GRACE = timedelta(seconds=10)


def zone(name: Any) -> ZoneInfo:
    """The IANA time zone called ``name``; ``ValueError`` naming it if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"timezone must be an IANA time zone name, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from None


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression in a time zone: 5 fields, or 6 with seconds first."""

    expression: str
    timezone: str = "UTC"
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _seconds: bool = field(init=False, repr=False, compare=False)
    _every_hour: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Checked against its column too: a code schedule is stored by every worker.
        check_name(self.expression, "cron", column="Schedule.cron")
        fields = self.expression.split()
        if len(fields) not in (5, 6):
            raise ValueError(
                f"cron {self.expression!r} has {len(fields)} fields: give 5 (minute hour "
                "day month weekday) or 6 (second minute hour day month weekday)"
            )
        seconds = len(fields) == 6
        try:
            parsed = croniter(self.expression, second_at_beginning=seconds)
        except (ValueError, KeyError) as error:  # croniter's errors are ValueErrors
            raise ValueError(f"invalid cron {self.expression!r}: {error}") from None
        hours = parsed.expanded[1]
        set_field = object.__setattr__  # frozen: derived values
        set_field(self, "_zone", zone(self.timezone))
        set_field(self, "_seconds", seconds)
        set_field(self, "_every_hour", hours == ["*"] or set(hours) == set(range(24)))

    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Naive local times matching the expression, strictly after ``start``."""
        walls = croniter(self.expression, start, second_at_beginning=self._seconds)
        try:
            while True:
                yield walls.get_next(datetime)
        except CroniterBadDateError:  # no match in croniter's own horizon (30 February)
            return

    def _instants(self, wall: datetime) -> list[datetime]:
        """The moments (UTC) a local wall time stands for, under the DST rules above."""
        first = wall.replace(tzinfo=self._zone, fold=0)
        if first.astimezone(UTC).astimezone(self._zone).replace(tzinfo=None) != wall:
            return []  # skipped by a spring-forward transition
        second = wall.replace(tzinfo=self._zone, fold=1)
        instants = [first.astimezone(UTC)]
        if second.utcoffset() != first.utcoffset() and self._every_hour:
            instants.append(second.astimezone(UTC))
        return instants

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self._zone).replace(tzinfo=None)

    def times(self, after: datetime, until: datetime) -> list[datetime]:
        """Fire times (aware, UTC) in ``(after, until]``, in order."""
        if until <= after:
            return []
        # A wall time just before after's may still be ahead on the timeline when the
        # offset drops soon (clocks going back), and one just after until's may be
        # behind it when the offset dropped lately: widen the walk by those drops.
        offset = self._offset(after)
        start = self._local(after) + min(timedelta(0), self._offset(after + _MAX_SHIFT) - offset)
        end = self._local(until) + max(
            timedelta(0), self._offset(until - _MAX_SHIFT) - self._offset(until)
        )
        found = []
        for wall in self._walls(start - timedelta(seconds=1)):
            if wall > end:
                break
            found += [t for t in self._instants(wall) if after < t <= until]
        return sorted(found)

    def _offset(self, moment: datetime) -> timedelta:
        return moment.astimezone(self._zone).utcoffset() or timedelta(0)

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time after ``after``; None if it never fires again."""
        look = _FIRST_LOOK
        start = after
        while start - after < _HORIZON:
            found = self.times(start, start + look)
            if found:
                return found[0]
            start, look = start + look, look * 2
        return None

    def latest(self, after: datetime, until: datetime) -> datetime | None:
        """The last fire time in ``(after, until]``, or None."""
        look = _FIRST_LOOK
        end = until
        while end > after:
            found = self.times(max(after, end - look), end)
            if found:
                return found[-1]
            end, look = end - look, look * 2
        return None

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (fewer if it stops firing)."""
        found: list[datetime] = []
        while len(found) < count:
            following = self.next_after(found[-1] if found else after)
            if following is None:
                break
            found.append(following)
        return found


def due_ticks(
    cron: Cron,
    *,
    cursor: datetime,
    now: datetime,
    catchup: timedelta | None,
    limit: int | None = None,
) -> list[datetime]:
    """The ticks to handle now, oldest first, given that every tick up to ``cursor`` was
    handled (at least the first ``limit`` of them, when there are more).

    Ticks inside ``catchup`` (at least ``LATE_GRACE``) before ``now`` are all due; of
    older ones, missed while no worker ran, only the latest, if nothing later is due.
    """
    window = max(catchup or LATE_GRACE, LATE_GRACE)
    # In growing slices, so a long window of a frequent schedule is not walked in full
    # when only its first ``limit`` ticks are wanted.
    ticks: list[datetime] = []
    start, look = max(cursor, now - window), _FIRST_LOOK
    while start < now and (limit is None or len(ticks) < limit):
        end = min(now, start + look)
        ticks += cron.times(start, end)
        start, look = end, look * 2
    if ticks:
        return ticks
    latest = cron.latest(cursor, now)
    return [] if latest is None else [latest]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """A schedule declared in code with ``@schedule``; workers store it at start."""

    name: str
    job_name: str
    cron: Cron
    args: list[Any]
    kwargs: dict[str, Any]
    overlap: str = "allow"
    catchup: timedelta | None = None


_registry: dict[str, ScheduleSpec] = {}


def schedule(
    cron: str,
    *,
    name: str | None = None,
    timezone: str = "UTC",
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    overlap: str = "allow",
    catchup: Duration | None = None,
) -> Callable[[Job], Job]:
    """Start a run of the job below at each time ``cron`` matches in ``timezone``.

    Stack it above ``@job``, as many times as needed. ``cron`` has 5 fields, or 6 with
    seconds first. ``overlap="skip"`` drops (and records) a tick while the schedule's
    previous run is unfinished. Missed ticks (no worker was running) are skipped, save the
    latest; ``catchup`` (a timedelta or seconds) starts each missed tick inside that window.
    Everything is checked here: a wrong type is a ``TypeError``, a bad value a ``ValueError``.
    """
    parsed = Cron(cron, timezone)
    if overlap not in OVERLAP_POLICIES:
        raise ValueError(f"overlap must be one of {OVERLAP_POLICIES}, got {overlap!r}")
    window = optional_timedelta(catchup, "catchup", positive=True)
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError(f"kwargs must be a dict or None, got {kwargs!r}")

    def decorate(job: Job) -> Job:
        if not isinstance(job, Job):
            raise TypeError(
                f"@schedule must be stacked above @job (it got {job!r}): write @schedule "
                "first, then @job, then the function"
            )
        job.check_arguments(args, kwargs or {})
        spec = ScheduleSpec(
            name=check_name(name or f"{job.name}:{cron}", "the schedule name", column=_NAME),
            job_name=job.name,
            cron=parsed,
            args=stored_args(args, job.name),
            kwargs=stored_kwargs(kwargs or {}, job.name),
            overlap=overlap,
            catchup=window,
        )
        existing = _registry.get(spec.name)
        # A module imported twice declares the same schedule again; two jobs, one name is a bug.
        if existing is not None and existing.job_name != spec.job_name:
            raise ValueError(
                f"two schedules are named {spec.name!r} (jobs {existing.job_name!r} and "
                f"{spec.job_name!r}): give one of them another name="
            )
        _registry[spec.name] = spec
        return job

    return decorate


_NAME = "Schedule.name"


def registered_schedules() -> dict[str, ScheduleSpec]:
    """A copy of the schedules declared in code: name -> ScheduleSpec."""
    return dict(_registry)


def forget_schedule(name: str) -> None:
    """Drop a declared schedule from this process (tests declare their own)."""
    _registry.pop(name, None)
