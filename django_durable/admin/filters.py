"""List filters whose choices never cost a scan of the run table.

Django's default filters for a CharField list the column's distinct values, a full
scan on millions of runs; these take their choices from the job registry instead.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from ..conf import durable_settings
from ..ids import uuid7_floor
from ..jobs import registered_jobs
from ..models import Run, Schedule


class JobFilter(admin.SimpleListFilter):
    title = "job"
    parameter_name = "job"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(registered_jobs())]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        # Any name is accepted, so runs of a job no longer deployed can still be listed.
        value = self.value()
        return queryset.filter(job_name=value) if value else queryset


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        queues = {job.queue_name for job in registered_jobs().values()} | {"default"}
        return [(name, name) for name in sorted(queues)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        value = self.value()
        return queryset.filter(queue_name=value) if value else queryset


class CreatedFilter(admin.SimpleListFilter):
    """Recent runs by creation time, answered by the primary key: run ids are UUIDv7,
    ordered by their creation millisecond."""

    title = "created"
    parameter_name = "created"
    periods = {
        "1h": ("Last hour", timedelta(hours=1)),
        "24h": ("Last 24 hours", timedelta(days=1)),
        "7d": ("Last 7 days", timedelta(days=7)),
        "30d": ("Last 30 days", timedelta(days=30)),
    }

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in self.periods.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        period = self.periods.get(self.value() or "")
        if period is None:
            return queryset
        return queryset.filter(pk__gte=uuid7_floor(timezone.now() - period[1]))


class ScheduleFilter(admin.SimpleListFilter):
    """Runs a schedule started (its ticks and its "run now" runs)."""

    title = "schedule"
    parameter_name = "schedule"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The schedule table is small: one row per schedule, not per run.
        schedules = Schedule.objects.using(durable_settings.DATABASE).order_by("name")
        return [(str(pk), name) for pk, name in schedules.values_list("pk", "name")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Run]) -> QuerySet[Run]:
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        return queryset.filter(schedule_tick__schedule_id=int(value))
