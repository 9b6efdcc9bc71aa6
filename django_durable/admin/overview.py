"""The overview page: how the runs are doing and which workers are alive.

A handful of grouped queries, each answered by an index on the run table, so the page
stays quick with millions of runs.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Min
from django.db.models.functions import TruncMinute
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from ..conf import durable_settings
from ..jobs import job_retention_policies
from ..models import RunOverview, RunQuerySet, Worker
from ..retention import Policy
from ..status import RunStatus
from . import database
from .display import format_duration
from .table_rows import table_rows

RECENT_FAILURES = 20


# ModelAdmin is generic only to type checkers (django-stubs), not at runtime.
if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[RunOverview]
else:
    ModelAdmin = admin.ModelAdmin


def counts(runs: RunQuerySet) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Runs per status, and per job and status, from one GROUP BY."""
    by_status: dict[str, int] = defaultdict(int)
    by_job: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in runs.values("job_name", "status").annotate(n=Count("pk")).order_by():
        by_status[row["status"]] += row["n"]
        by_job[row["job_name"]][row["status"]] += row["n"]
    jobs = [
        {"name": name, "counts": [per_status.get(status, 0) for status in RunStatus.values]}
        for name, per_status in sorted(by_job.items())
    ]
    return {status: by_status.get(status, 0) for status in RunStatus.values}, jobs


def throughput(now: datetime) -> list[dict[str, Any]]:
    """Runs finished per minute over the last hour, oldest minute first."""
    start = (now - timedelta(hours=1)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    rows = (
        database.runs()
        .finished_since(start)
        .annotate(minute=TruncMinute("finished_at", tzinfo=UTC))
        .values("minute", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )
    per_minute: dict[datetime, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        per_minute[row["minute"]][row["status"]] += row["n"]
    minutes = [start + timedelta(minutes=i) for i in range(60)]
    totals = [sum(per_minute[minute].values()) for minute in minutes]
    peak = max(totals) or 1
    return [
        {
            "minute": minute,
            "total": total,
            "failed": per_minute[minute][RunStatus.FAILED],
            "height": f"{100 * total / peak:.1f}",
        }
        for minute, total in zip(minutes, totals, strict=True)
    ]


def retention(workers: list[Worker]) -> dict[str, Any]:
    """The policy in force, the jobs with their own, the table sizes, the last pass."""
    project = durable_settings.RETENTION

    def kept(policy: Policy) -> list[dict[str, str]]:
        return [
            {"status": status, "kept": "for ever" if keep is None else format_duration(keep)}
            for status, keep in policy.items()
        ]

    passes = [worker for worker in workers if worker.pruned_at is not None]
    return {
        "policy": kept(project),
        "jobs": [
            {"name": name, "policy": kept(policy)}
            for name, policy in sorted(job_retention_policies(project).items())
        ],
        "tables": table_rows(),
        "prune_interval": durable_settings.PRUNE_INTERVAL,
        "last_pass": max(passes, key=attrgetter("pruned_at")) if passes else None,
    }


def unserved(live: list[Worker]) -> list[dict[str, Any]]:
    """Pending runs that no live worker can take: their job or queue is not served."""
    rows = (
        database.runs()
        .pending()
        .values("job_name", "queue_name")
        .annotate(n=Count("pk"), oldest=Min("run_after"))
        .order_by("job_name", "queue_name")
    )

    def served(job_name: str, queue_name: str) -> bool:
        return any(
            job_name in worker.jobs and (worker.queues is None or queue_name in worker.queues)
            for worker in live
        )

    return [dict(row) for row in rows if not served(row["job_name"], row["queue_name"])]


class OverviewAdmin(ModelAdmin):
    """Listed on the app index as "Overview"; anyone who may view runs may see it."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("django_durable.view_run")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        # The page is the model's "changelist", so the app index links to it.
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="django_durable_runoverview_changelist",
            )
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        by_status, by_job = counts(database.runs())
        failed_today = database.runs().failed_since(now - timedelta(hours=24))
        failures = list(
            failed_today.only("id", "job_name", "finished_at", "attempt", "errors").order_by(
                "-finished_at"
            )[:RECENT_FAILURES]
        )
        failures_count = failed_today.count()
        oldest = database.runs().pending().aggregate(oldest=Min("run_after"))
        oldest_age = format_duration(now - oldest["oldest"]) if oldest["oldest"] else None
        workers = list(database.workers().order_by("-last_seen_at"))
        live_since = now - timedelta(seconds=durable_settings.STALE_AFTER)
        live = [worker for worker in workers if worker.last_seen_at >= live_since]
        changelist = reverse("admin:django_durable_run_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "cl": {"opts": self.opts},  # what Django's list template draws breadcrumbs from
            "title": "Durable runs: overview",
            "now": now,
            "statuses": [
                {
                    "value": status,
                    "label": label,
                    "count": by_status[status],
                    "url": f"{changelist}?status__exact={status}",
                }
                for status, label in RunStatus.choices
            ],
            "status_labels": RunStatus.labels,
            "jobs": by_job,
            "failures": [{"run": run, "error": (run.errors or [None])[-1]} for run in failures],
            "failures_count": failures_count,
            "failures_url": f"{changelist}?status__exact=failed",
            "throughput": throughput(now),
            "oldest_pending_age": oldest_age,
            "unserved": unserved(live),
            "live_workers": live,
            "dead_workers": [worker for worker in workers if worker.last_seen_at < live_since],
            "retention": retention(workers),
            "changelist_url": changelist,
            "media": self.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/django_durable/overview.html", context)

    class Media:
        css = {"all": ("django_durable/admin.css",)}
