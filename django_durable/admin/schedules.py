"""The schedule list and page: next fire time, last run, the next five fire times, edits
checked as ``@schedule`` checks them, and enable, disable and run now.

A schedule declared in code is defined by the code (workers store it at each start), so
only ``enabled`` is editable here; the others are edited in full.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, QuerySet, Subquery, UUIDField
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ..conf import durable_settings
from ..jobs import registered_jobs
from ..models import Schedule, ScheduleTick
from ..payloads import stored_args, stored_kwargs
from ..schedules import Cron, zone
from ..storage import get_storage
from ..storage.schedules import DEFINITION, start_now

# Generic only to type checkers (django-stubs), not at runtime.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Schedule]
    ModelForm = forms.ModelForm[Schedule]
else:
    ModelAdmin = admin.ModelAdmin
    ModelForm = forms.ModelForm

PREVIEW = 5  # fire times shown on the schedule's page


class ScheduleForm(ModelForm):
    class Meta:
        model = Schedule
        fields = ("name", *DEFINITION, "enabled")
        help_texts = {
            "cron": "5 fields (minute hour day month weekday), or 6 with seconds first.",
            "timezone": "An IANA name, such as UTC or Europe/Paris.",
            "args": "A JSON list of positional arguments.",
            "kwargs": "A JSON object of keyword arguments.",
            "overlap": "Skip: drop a tick while the previous run is unfinished.",
            "catchup": "How far back missed ticks still run (e.g. 6:00:00); empty: none.",
        }

    # @schedule's own checks, so the form says what the decorator would say.
    def clean_timezone(self) -> str:
        name: str = self.cleaned_data["timezone"]
        try:
            zone(name)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from error
        return name

    def clean_job_name(self) -> str:
        name: str = self.cleaned_data["job_name"]
        if name not in registered_jobs():
            raise forms.ValidationError(f"No job named {name!r} is registered.")
        return name

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        if "cron" in data and "timezone" in data:
            try:
                Cron(data["cron"], data["timezone"])
            except (TypeError, ValueError) as error:
                self.add_error("cron", str(error))
        catchup = data.get("catchup")
        if catchup is not None and catchup.total_seconds() <= 0:
            self.add_error("catchup", "Catch-up must be a positive duration.")
        job = registered_jobs().get(data.get("job_name", ""))
        args, kwargs = data.get("args", []), data.get("kwargs", {})
        if job is not None and "args" in data and "kwargs" in data:
            if not isinstance(args, list):
                self.add_error("args", "The arguments must be a JSON list.")
            elif not isinstance(kwargs, dict):
                self.add_error("kwargs", "The keyword arguments must be a JSON object.")
            else:
                try:
                    job.check_arguments(args, kwargs)
                    stored_args(args, job.name)
                    stored_kwargs(kwargs, job.name)
                except (TypeError, ValueError) as error:
                    self.add_error(None, str(error))
        return data


class ScheduleAdmin(ModelAdmin):
    form = ScheduleForm
    list_display = (
        "name",
        "job_name",
        "cron",
        "timezone",
        "enabled",
        "origin",
        "next_fire",
        "last_run",
    )
    list_filter = ("enabled", "from_code", "removed_from_code")
    search_fields = ("name", "job_name")
    actions = ("enable", "disable", "run_now")
    readonly_fields = ("origin", "last_tick_at", "next_fire_at", "upcoming", "last_run")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        # The newest tick that started a run: the "last run" column, one subquery.
        last = ScheduleTick.objects.filter(schedule=OuterRef("pk"), run__isnull=False)
        return (
            Schedule.objects.using(durable_settings.DATABASE)
            .annotate(
                last_run_id=Subquery(
                    last.order_by("-scheduled_at").values("run_id")[:1],
                    output_field=UUIDField(),
                )
            )
            .order_by("name")
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Schedule | None = None) -> Any:
        if obj is not None and obj.from_code:
            return (*self.readonly_fields, "name", *DEFINITION)
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Schedule, form: Any, change: bool) -> None:
        if not change or set(form.changed_data) & set(DEFINITION):
            # A new or changed definition counts from now: no past tick of it fires.
            obj.last_tick_at = get_storage().now()
            obj.next_fire_at = None
        obj.save(using=durable_settings.DATABASE)

    # -- columns ------------------------------------------------------------------------

    @admin.display(description="origin")
    def origin(self, obj: Schedule) -> str:
        if not obj.from_code:
            return "admin"
        return "code (removed from the code: not firing)" if obj.removed_from_code else "code"

    @admin.display(description="next fire time", ordering="next_fire_at")
    def next_fire(self, obj: Schedule) -> str:
        if not obj.enabled or obj.removed_from_code:
            return "—"
        upcoming = self._upcoming(obj, 1)
        return upcoming[0] if upcoming else "never"

    @admin.display(description="last run")
    def last_run(self, obj: Schedule) -> str:
        run_id = getattr(obj, "last_run_id", None)
        if run_id is None:
            return "—"
        runs = reverse("admin:django_durable_run_changelist") + f"?schedule={obj.pk}"
        return format_html(
            '<a href="{}">{}</a> (<a href="{}">all runs</a>)',
            reverse("admin:django_durable_run_change", args=[run_id]),
            run_id,
            runs,
        )

    @admin.display(description=f"next {PREVIEW} fire times")
    def upcoming(self, obj: Schedule) -> str:
        times = self._upcoming(obj, PREVIEW)
        if not times:
            return "—"
        return format_html_join("", "<div>{}</div>", ((time,) for time in times))

    def _upcoming(self, obj: Schedule, count: int) -> list[str]:
        """The next fire times in the schedule's own zone, counted from now (or from
        its cursor, if that is later)."""
        try:
            cron = Cron(obj.cron, obj.timezone)
        except (TypeError, ValueError) as error:
            return [f"invalid: {error}"]
        now = get_storage().now()
        after = max(now, obj.last_tick_at) if obj.last_tick_at else now
        local = zone(obj.timezone)
        times = cron.upcoming(after, count)
        return [t.astimezone(local).strftime("%Y-%m-%d %H:%M:%S %Z") for t in times]

    # -- actions ------------------------------------------------------------------------

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = queryset.update(enabled=True, next_fire_at=None)
        self.message_user(request, f"Enabled {count} schedule(s).", messages.SUCCESS)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        count = queryset.update(enabled=False)
        self.message_user(request, f"Disabled {count} schedule(s).", messages.SUCCESS)

    @admin.action(description="Run now (one run each, marked manual)", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        jobs = registered_jobs()
        started = 0
        for schedule in queryset:
            job = jobs.get(schedule.job_name)
            if job is None:
                self.message_user(
                    request,
                    f"{schedule.name}: no job named {schedule.job_name!r} is registered.",
                    messages.ERROR,
                )
                continue
            try:
                start_now(durable_settings.DATABASE, schedule, job)
            except (TypeError, ValueError) as error:
                self.message_user(request, f"{schedule.name}: {error}", messages.ERROR)
                continue
            self.log_change(request, schedule, "Run now (admin action)")
            started += 1
        if started:
            self.message_user(request, f"Started {started} run(s).", messages.SUCCESS)

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_durable.run_schedule")
