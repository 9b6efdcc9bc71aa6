"""The run list, the read-only run page and the actions operators take on runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from ..conf import durable_settings
from ..models import Run
from ..status import FINISHED_STATUSES, RunStatus, StepStatus
from . import database
from .actions import ACTIONS, perform
from .confirmation import LIST_COLUMNS, intermediate
from .display import (
    describe_wait,
    duration,
    format_duration,
    pretty_json,
    progress_percent,
    short_time,
)
from .filters import CreatedFilter, JobFilter, QueueFilter, ScheduleFilter
from .forks import PERMISSION, fork_context, fork_from_failure, fork_urls
from .live import LIVE_COLUMNS, POLL_INTERVAL_MS, live_state, progress_text
from .pagination import CappedCountPaginator
from .search import search_runs
from .timeline import last_heartbeat, timeline

# The detail page shows this many logs, events and children; the rest are a link away.
DETAIL_LIMIT = 200


# ModelAdmin is generic only to type checkers (django-stubs), not at runtime.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[Run]
else:
    ModelAdmin = admin.ModelAdmin


class RunAdmin(ModelAdmin):
    # Few, narrow columns: all of them fit beside both sidebars at 1400 px (the id breaks
    # after its time part; progress and attempt sit under the status badge).
    list_display = (
        "run_id",
        "status_badge",
        "job",
        "queue",
        "created",
        "ran",
        "run_duration",
    )
    list_display_links = ("run_id",)
    list_filter = ("status", JobFilter, QueueFilter, ScheduleFilter, CreatedFilter)
    # Search goes through get_search_results; the field list only turns the box on.
    search_fields = ("=id",)
    search_help_text = (
        "A run id or its first characters, an idempotency or concurrency key, text in the"
        " arguments, or name=value for a keyword argument."
    )
    # Ids are UUIDv7: newest first through the primary key index, no sort.
    ordering = ("-id",)
    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50
    actions = ("retry_runs", "cancel_runs", "restart_runs", "send_event_to_runs", fork_from_failure)
    list_columns = LIST_COLUMNS

    class Media:
        css = {"all": ("django_durable/admin.css",)}

    # -- read-only --------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Run | None = None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return ACTIONS["retry"].allowed(request)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return ACTIONS["cancel"].allowed(request)

    def has_restart_permission(self, request: HttpRequest) -> bool:
        return ACTIONS["restart"].allowed(request)

    def has_send_event_permission(self, request: HttpRequest) -> bool:
        return ACTIONS["send_event"].allowed(request)

    # -- the list ---------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Run]:
        return self._runs(request).only(*self.list_columns)

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Run | None:
        # Every column: the run page and the actions read more than the list draws.
        try:
            return self._runs(request).get(pk=Run._meta.pk.to_python(object_id))
        except (Run.DoesNotExist, ValidationError, ValueError):
            return None

    def _runs(self, request: HttpRequest) -> QuerySet[Run]:
        """Every run, ordered as the admin orders, read from DURABLE["DATABASE"]."""
        return super().get_queryset(request).using(durable_settings.DATABASE)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Run], search_term: str
    ) -> tuple[QuerySet[Run], bool]:
        return search_runs(queryset, search_term), False

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        # The detail page links to a run's children as ?parent__id__exact=<id>.
        return lookup == "parent__id__exact" or super().lookup_allowed(lookup, value, request)

    @admin.display(description="id", ordering="id")
    def run_id(self, run: Run) -> str:
        text = str(run.pk)
        # A UUIDv7 begins with its creation time: break the line after that part.
        return format_html("<span>{}</span><wbr><span>{}</span>", text[:19], text[19:])

    @admin.display(description="job", ordering="job_name")
    def job(self, run: Run) -> str:
        # Break a dotted name only after its dots.
        parts = run.job_name.split(".")
        dotted = [
            format_html("<span>{}{}</span>", part, "." if i < len(parts) - 1 else "")
            for i, part in enumerate(parts)
        ]
        return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in dotted))

    @admin.display(description="queue", ordering="queue_name")
    def queue(self, run: Run) -> str:
        return run.queue_name

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: Run) -> str:
        badge = format_html(
            '<span class="durable-badge durable-{}">{}</span>', run.status, run.get_status_display()
        )
        attempt = format_html('<span class="durable-attempt">attempt {}</span>', run.attempt)
        return format_html(
            "{}{}{}", badge, self.progress_bar(run), attempt if run.attempt > 1 else ""
        )

    def progress_bar(self, run: Run) -> str:
        percent = progress_percent(run.progress)
        if run.status != RunStatus.RUNNING or percent is None:
            return ""
        message = (run.progress or {}).get("message") or f"{percent:.0f}%"
        return format_html(
            '<span class="durable-progress" title="{}"><span style="width:{}%"></span></span>',
            message,
            f"{percent:.1f}",
        )

    @admin.display(description="created", ordering="id")
    def created(self, run: Run) -> str:
        return short_time(run.created_at, timezone.now())

    @admin.display(description="started / finished")
    def ran(self, run: Run) -> str:
        now = timezone.now()
        if run.started_at is None:
            return "—"
        return format_html(
            "{}<br>{}", short_time(run.started_at, now), short_time(run.finished_at, now)
        )

    @admin.display(description="duration")
    def run_duration(self, run: Run) -> str:
        return format_duration(duration(run, timezone.now()))

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Django drops an action the user may not take with a "no action selected"
        # message; a forged POST for one gets a plain 403 instead.
        if request.method == "POST":
            for name in request.POST.getlist("action"):
                action = self._changelist_actions.get(name)
                if action is not None and not action.allowed(request):
                    raise PermissionDenied
        context = {"overview_url": reverse("admin:django_durable_runoverview_changelist")}
        return super().changelist_view(request, {**context, **(extra_context or {})})

    _changelist_actions = {
        "retry_runs": ACTIONS["retry"],
        "cancel_runs": ACTIONS["cancel"],
        "restart_runs": ACTIONS["restart"],
        "send_event_to_runs": ACTIONS["send_event"],
        "fork_from_failure": PERMISSION,
    }

    @admin.action(description="Retry selected failed or cancelled runs", permissions=["retry"])
    def retry_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        perform(self, request, ACTIONS["retry"], queryset.iterator())

    @admin.action(description="Cancel selected unfinished runs", permissions=["cancel"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        perform(self, request, ACTIONS["cancel"], queryset.iterator())

    @admin.action(
        description="Restart selected finished runs from scratch", permissions=["restart"]
    )
    def restart_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> HttpResponse | None:
        return intermediate(self, request, ACTIONS["restart"], queryset, "restart_runs")

    @admin.action(
        description="Send an event to selected unfinished runs", permissions=["send_event"]
    )
    def send_event_to_runs(
        self, request: HttpRequest, queryset: QuerySet[Run]
    ) -> HttpResponse | None:
        return intermediate(self, request, ACTIONS["send_event"], queryset, "send_event_to_runs")

    # -- the run page -----------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        action_url = path(
            "<path:object_id>/actions/<str:name>/",
            self.admin_site.admin_view(self.run_action_view),
            name="django_durable_run_action",
        )
        live_url = path(
            "<path:object_id>/live/",
            self.admin_site.admin_view(self.run_live_view),
            name="django_durable_run_live",
        )
        return [action_url, live_url, *fork_urls(self), *super().get_urls()]

    def run_live_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        """The status and progress the page of a running run polls for."""
        try:
            pk = Run._meta.pk.to_python(object_id)
            run = self._runs(request).only(*LIVE_COLUMNS).get(pk=pk)
        except (Run.DoesNotExist, ValidationError, ValueError):
            raise Http404("no such run") from None
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        return JsonResponse(live_state(run))

    def run_action_view(self, request: HttpRequest, object_id: str, name: str) -> HttpResponse:
        action = ACTIONS.get(name)
        if action is None:
            raise Http404(f"no run action {name!r}")
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404("no such run")
        if not self.has_view_permission(request, run) or not action.allowed(request):
            raise PermissionDenied
        detail = reverse("admin:django_durable_run_change", args=[run.pk])
        runs = database.runs().filter(pk=run.pk)
        if action.intermediate:
            response = intermediate(self, request, action, runs, name, single=run)
            return response or HttpResponseRedirect(detail)
        if request.method != "POST":
            return HttpResponseRedirect(detail)
        perform(self, request, action, runs)
        return HttpResponseRedirect(detail)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404(f"no run with id {object_id}")
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        now = timezone.now()
        # The related managers read the alias the run was read from.
        steps = list(run.steps.order_by("position"))
        logs = list(run.logs.order_by("id")[: DETAIL_LIMIT + 1])
        events = list(run.events.order_by("id")[: DETAIL_LIMIT + 1])
        children = list(
            run.children.only("id", "job_name", "status").order_by("id")[: DETAIL_LIMIT + 1]
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": run,
            "has_view_permission": True,  # checked above; Django's breadcrumbs link the list
            "title": f"{run.job_name} {run.pk}",
            "run": run,
            "args_json": pretty_json({"args": run.args, "kwargs": run.kwargs}),
            "output_json": pretty_json(run.output) if run.output is not None else None,
            # Not "errors": Django's change_form.html titles a page with errors "Error: ...".
            "run_errors": list(reversed(run.errors or [])),
            "duration": format_duration(duration(run, now)),
            "progress_percent": progress_percent(run.progress),
            "progress_text": progress_text(run.progress),
            "live_url": reverse("admin:django_durable_run_live", args=[run.pk])
            if run.status == RunStatus.RUNNING
            else None,
            "poll_interval": POLL_INTERVAL_MS,
            # A finished run's progress is what it last reported, not where it is.
            "progress_stale": run.status in FINISHED_STATUSES,
            "waiting_for": describe_wait(
                run, next((s for s in steps if s.status == StepStatus.WAITING), None)
            ),
            "timeline": timeline(steps, run, now),
            "logs": logs[:DETAIL_LIMIT],
            "more_logs": len(logs) > DETAIL_LIMIT,
            "events": events[:DETAIL_LIMIT],
            "more_events": len(events) > DETAIL_LIMIT,
            "children": children[:DETAIL_LIMIT],
            "more_children": len(children) > DETAIL_LIMIT,
            "children_url": reverse("admin:django_durable_run_changelist")
            + f"?parent__id__exact={run.pk}",
            "last_heartbeat": last_heartbeat(run),
            "buttons": [
                action
                for action in ACTIONS.values()
                if not action.rule.refusal(run.status) and action.allowed(request)
            ],
            **fork_context(request, run),
            "media": self.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/django_durable/run/detail.html", context)
