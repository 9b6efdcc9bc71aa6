"""Forking runs from the admin: "Fork from here" on each journal row, through a page that
shows what the fork keeps and what runs again; the bulk "Fork from failure" action; the
links between a run and its forks.

Forking takes the permission retrying takes: both run a finished run's job again, and
neither changes the old run. The rules are ``fork_run``'s (``storage/fork_plan.py``), so
the page shows exactly what the fork will do.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from ..exceptions import JobNotRegistered
from ..jobs import get_job
from ..models import Run
from ..operations import fork_run
from ..operator_rules import RULES
from ..status import FINISHED_STATUSES
from ..storage.convert import step_record
from ..storage.fork_plan import consumed_flags, plan_fork, refuse_status, started_children
from . import database
from .actions import ACTIONS, plural

PERMISSION = ACTIONS["retry"]
# The run page lists this many forks of a run.
LISTED = 50
# The bulk action names at most this many refused runs.
NAMED = 10
FORK_ERRORS = (TypeError, ValueError, LookupError)  # fork_run's refusals


def may_fork(request: HttpRequest) -> bool:
    return PERMISSION.allowed(request)


def fork_urls(model_admin: admin.ModelAdmin[Run]) -> list[URLPattern]:
    view = model_admin.admin_site.admin_view(partial(fork_view, model_admin))
    return [path("<path:object_id>/fork/<int:position>/", view, name="django_durable_run_fork")]


def fork_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    """What the run page shows of forks: the run it was forked from, its own forks, and
    whether its journal rows offer "Fork from here"."""
    original = None
    if run.forked_from is not None:
        original = database.runs().filter(pk=run.forked_from).only("job_name", "status").first()
    forks = list(
        database.runs()
        .filter(forked_from=run.pk)
        .only("id", "job_name", "status", "created_at")
        .order_by("id")[: LISTED + 1]
    )
    return {
        "can_fork": run.status in FINISHED_STATUSES and may_fork(request),
        "forked_from_run": original,
        "forks": forks[:LISTED],
        "more_forks": len(forks) > LISTED,
    }


def preview(run: Run, position: int) -> tuple[dict[str, Any], str | None]:
    """What forking ``run`` from ``position`` keeps and runs again, or why it is refused."""
    steps = list(run.steps.order_by("position"))
    context: dict[str, Any] = {
        "kept": steps[:position],
        "again": steps[position:],
        "reused": [],
        "events_kept": 0,
        "events_again": 0,
    }
    journal = [step_record(step) for step in steps]
    children = started_children(journal)
    statuses = dict(database.runs().filter(pk__in=children).values_list("pk", "status"))
    try:
        refuse_status(run.pk, run.status)
        get_job(run.job_name)
        plan = plan_fork(run.pk, journal, position, statuses)
    except JobNotRegistered as error:
        return context, f"Its job is not registered in this process: {error}"
    except FORK_ERRORS as error:
        return context, str(error)
    events = run.events.order_by("id").values_list("name", "consumed_at")
    flags = consumed_flags(plan, ((name, consumed is not None) for name, consumed in events))
    context["reused"] = list(
        database.runs().filter(pk__in=plan.reused_children).only("job_name", "status")
    )
    context["events_kept"] = sum(flags)
    context["events_again"] = len(flags) - sum(flags)
    return context, None


def fork_view(
    model_admin: admin.ModelAdmin[Run], request: HttpRequest, object_id: str, position: int
) -> HttpResponse:
    """The confirmation page of "Fork from here"; a POST of it forks."""
    run = model_admin.get_object(request, object_id)
    if run is None:
        raise Http404("no such run")
    if not model_admin.has_view_permission(request, run) or not may_fork(request):
        raise PermissionDenied
    shown, refusal = preview(run, position)
    if request.method == "POST" and "apply" in request.POST and refusal is None:
        try:
            fork = fork_run(run.pk, from_step=position)
        except FORK_ERRORS as error:  # the run changed since the page was drawn
            refusal = str(error)
        else:
            model_admin.log_change(
                request, run, f"Forked from position {position} as run {fork.id} (admin)"
            )
            model_admin.message_user(
                request,
                f"Forked run {run.pk} from position {position}: the fork is run {fork.id}.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:django_durable_run_change", args=[fork.id]))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": run,
        "has_view_permission": True,
        "title": f"Fork {run.job_name} {run.pk} from position {position}?",
        "run": run,
        "position": position,
        "refusal": refusal,
        **shown,
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/django_durable/run/fork_confirmation.html", context)


@admin.action(description="Fork selected finished runs from their failure", permissions=["retry"])
def fork_from_failure(
    model_admin: admin.ModelAdmin[Run], request: HttpRequest, queryset: QuerySet[Run]
) -> None:
    """Fork each selected run from its first failed or unfinished operation; report how
    many were forked, and which were refused and why."""
    forked, refused = 0, []
    for run in queryset.only("id", "status", "job_name").iterator():
        reason = RULES["fork"].refusal(run.status)
        if reason is None:
            try:
                fork = fork_run(run.pk)
            except FORK_ERRORS as error:
                reason = str(error)
            else:
                model_admin.log_change(request, run, f"Forked from failure as run {fork.id}")
                forked += 1
                continue
        refused.append(f"{run.pk}: {reason}")
    if forked:
        model_admin.message_user(request, f"Forked {plural(forked)}.", messages.SUCCESS)
    if refused:
        named = "; ".join(refused[:NAMED])
        more = f"; and {len(refused) - NAMED} more" if len(refused) > NAMED else ""
        model_admin.message_user(
            request, f"Refused {plural(len(refused))}: {named}{more}.", messages.WARNING
        )
