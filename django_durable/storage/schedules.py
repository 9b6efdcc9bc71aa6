"""Schedules in the database: storing the code's, and turning due ticks into runs.

Any worker produces ticks; there is no leader. One schedule's due ticks are handled in
one transaction that holds its row (``SKIP LOCKED`` where the database has it, so a
worker never waits for another on the same schedule), inserts each tick with its run,
and moves the cursor past them. The tick's identity, (schedule, time), is under a unique
constraint: should two producers still meet on a tick, the second insert fails in a
savepoint of its own, which takes its run with it and leaves the rest of the work alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, connections, transaction

from ..models import Run, Schedule, ScheduleTick
from ..schedules import Cron, ScheduleSpec, due_ticks
from ..status import TickStatus
from .dbclock import DbNow
from .own_writes import own_write

if TYPE_CHECKING:
    from ..jobs import Job

# Ticks one pass handles per schedule (a long catch-up goes on in the next passes).
MAX_TICKS = 100
# next_fire_at of a schedule that will never fire again (cron "0 0 30 2 *").
NEVER = datetime(9999, 12, 31, tzinfo=UTC)
# How long a schedule whose stored definition is broken waits before it is tried again.
BROKEN_RETRY_SECONDS = 60.0
# The columns that define what a schedule does (the rest is its state).
DEFINITION = ("job_name", "cron", "timezone", "args", "kwargs", "overlap", "catchup")


@dataclass
class Produced:
    """What one pass did with one schedule's due ticks."""

    started: list[tuple[datetime, uuid.UUID]] = field(default_factory=list)
    skipped: list[tuple[datetime, str]] = field(default_factory=list)
    problem: str | None = None  # the stored definition is broken: nothing was produced


def _definition(spec: ScheduleSpec) -> dict[str, object]:
    values = (spec.job_name, spec.cron.expression, spec.cron.timezone, spec.args)
    return dict(zip(DEFINITION, (*values, spec.kwargs, spec.overlap, spec.catchup), strict=True))


def sync_schedules(alias: str, specs: Mapping[str, ScheduleSpec]) -> tuple[int, int, int]:
    """Store the schedules declared in code, by name; mark the rest of the code's as
    removed (kept, not firing). Return how many were created, updated and removed.

    A changed definition starts from now: no tick of the old one, nor any of the new one
    before now, is started for it.
    """

    def sync() -> tuple[int, int, int]:
        schedules = Schedule.objects.using(alias)
        rows = {row.name: row for row in schedules.filter(name__in=list(specs))}
        created = updated = 0
        for name, spec in specs.items():
            wanted = _definition(spec)
            row = rows.get(name)
            if row is None:
                try:
                    with transaction.atomic(using=alias):  # another worker may create it
                        schedules.create(name=name, from_code=True, last_tick_at=DbNow(), **wanted)
                    created += 1
                    continue
                except IntegrityError:
                    row = schedules.get(name=name)
            same = all(getattr(row, key) == value for key, value in wanted.items())
            if same and row.from_code and not row.removed_from_code:
                continue
            changes: dict[str, object] = {"from_code": True, "removed_from_code": False}
            if not same:
                changes |= {**wanted, "last_tick_at": DbNow(), "next_fire_at": None}
            schedules.filter(pk=row.pk).update(updated_at=DbNow(), **changes)
            updated += 1
        removed = (
            schedules.filter(from_code=True, removed_from_code=False)
            .exclude(name__in=list(specs))
            .update(removed_from_code=True, updated_at=DbNow())
        )
        return created, updated, removed

    return own_write(alias, sync)


def due_schedules(alias: str, job_names: Collection[str], now: datetime) -> list[int]:
    """Ids of the schedules of these jobs with a tick due (or a next time to compute)."""
    return list(
        Schedule.objects.using(alias)
        .filter(enabled=True, removed_from_code=False, job_name__in=list(job_names))
        .exclude(next_fire_at__gt=now)
        .order_by("next_fire_at", "pk")
        .values_list("pk", flat=True)
    )


def produce_ticks(
    alias: str, schedule_id: int, *, now: datetime, jobs: Mapping[str, Job]
) -> Produced:
    """Start (or skip) the schedule's due ticks by ``now`` (the database clock) and move
    its cursor, in one transaction. Nothing happens if another worker holds the schedule,
    or did it already."""

    def produce() -> Produced:
        rows = Schedule.objects.using(alias).filter(
            pk=schedule_id, enabled=True, removed_from_code=False
        )
        if connections[alias].features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        row = rows.first()
        job = None if row is None else jobs.get(row.job_name)
        if row is None or job is None or (row.next_fire_at and row.next_fire_at > now):
            return Produced()
        try:
            cron = Cron(row.cron, row.timezone)
        except (TypeError, ValueError) as error:
            # Looked at again in a while, not on every pass.
            retry_at = DbNow(BROKEN_RETRY_SECONDS)
            _save(alias, row, last_tick_at=row.last_tick_at, next_fire_at=retry_at)
            return Produced(problem=str(error))
        cursor = row.last_tick_at or now
        ticks = due_ticks(cron, cursor=cursor, now=now, catchup=row.catchup, limit=MAX_TICKS + 1)
        produced = Produced()
        for at in ticks[:MAX_TICKS]:
            _tick(alias, row, job, at, produced)
        if len(ticks) > MAX_TICKS:
            cursor = ticks[MAX_TICKS - 1]
            _save(alias, row, last_tick_at=cursor, next_fire_at=cursor)
        else:
            cursor = max(cursor, now)
            _save(alias, row, last_tick_at=cursor, next_fire_at=cron.next_after(cursor) or NEVER)
        return produced

    return own_write(alias, produce)


def _save(
    alias: str, row: Schedule, *, last_tick_at: datetime | None, next_fire_at: datetime | DbNow
) -> None:
    Schedule.objects.using(alias).filter(pk=row.pk).update(
        last_tick_at=last_tick_at, next_fire_at=next_fire_at
    )


def _tick(alias: str, row: Schedule, job: Job, at: datetime, produced: Produced) -> None:
    """Start a run for the tick at ``at``, or record why not; a tick already stored (by
    another producer) is left as it is."""
    from . import storage_for  # the storage imports the modules this one sits beside

    reason = None
    if row.overlap == "skip" and _has_unfinished_run(alias, row):
        reason = "the previous run is unfinished (overlap='skip')"
    else:
        try:
            new = job.new_run(row.args, row.kwargs, scheduled_at=at)
        except (TypeError, ValueError) as error:
            reason = f"the schedule's arguments do not fit the job: {error}"[:255]
    try:
        with transaction.atomic(using=alias):
            if reason is None:
                record, _ = storage_for(alias).enqueue(new)
                ScheduleTick.objects.using(alias).create(
                    schedule=row, scheduled_at=at, status=TickStatus.STARTED, run_id=record.id
                )
                produced.started.append((at, record.id))
            else:
                ScheduleTick.objects.using(alias).create(
                    schedule=row, scheduled_at=at, status=TickStatus.SKIPPED, reason=reason
                )
                produced.skipped.append((at, reason))
    except IntegrityError:
        if not ScheduleTick.objects.using(alias).filter(schedule=row, scheduled_at=at).exists():
            raise  # some other constraint: not a tick stored twice


def _has_unfinished_run(alias: str, row: Schedule) -> bool:
    return Run.objects.using(alias).filter(schedule_tick__schedule=row).unfinished().exists()


def start_now(alias: str, row: Schedule, job: Job) -> uuid.UUID:
    """Start a run of the schedule now, outside its cron (the admin's "run now"): a tick
    marked manual, at the database's time, which the run sees as ``ctx.scheduled_at``."""
    from . import storage_for

    def start() -> uuid.UUID:
        storage = storage_for(alias)
        now = storage.now()
        record, _ = storage.enqueue(job.new_run(row.args, row.kwargs, scheduled_at=now))
        ScheduleTick.objects.using(alias).create(
            schedule=row,
            scheduled_at=now,
            status=TickStatus.MANUAL,
            run_id=record.id,
        )
        return record.id

    return own_write(alias, start)
