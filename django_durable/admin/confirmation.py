"""The page an action goes through before anything happens: the confirmation of a
restart, the form of an event to send."""

from __future__ import annotations

from django.contrib.admin import ModelAdmin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from ..models import Run
from .actions import EventForm, RunAction, perform
from .event_names import awaited_names, name_warning

# The columns the run list draws (and this page lists); args, output and errors stay in
# the table.
LIST_COLUMNS = (
    "id",
    "status",
    "job_name",
    "queue_name",
    "progress",
    "attempt",
    "created_at",
    "started_at",
    "finished_at",
)
# The page lists this many runs; the rest are counted.
LISTED = 200


def intermediate(
    model_admin: ModelAdmin[Run],
    request: HttpRequest,
    action: RunAction,
    queryset: QuerySet[Run],
    action_name: str,
    single: Run | None = None,
) -> HttpResponse | None:
    """The confirmation page (restart) or event form (send event), then the action."""
    legal = queryset.filter(status__in=action.rule.legal)
    applying = "apply" in request.POST
    awaited = awaited_names(legal) if action.name == "send_event" else []
    form = EventForm(
        request.POST if applying else None,
        initial={"name": awaited[0]} if len(awaited) == 1 else {},
        awaited=awaited,
    )
    warning = None
    if action.name == "send_event":
        ready = applying and form.is_valid()
        name = form.cleaned_data["name"] if ready else ""
        if ready:
            warning = name_warning(legal, name, awaited)
            # Sent once the operator saw the warning and sent the same name again.
            ready = warning is None or request.POST.get("confirmed_name") == name
        arguments = (name, form.cleaned_data["payload"]) if ready else ()
    else:
        ready, arguments = applying, ()
    if ready:
        perform(model_admin, request, action, queryset.iterator(), *arguments)
        return None
    runs = list(legal.only(*LIST_COLUMNS)[:LISTED])
    legal_count = legal.count() if len(runs) == LISTED else len(runs)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": f"{action.label}: are you sure?"
        if action.name == "restart"
        else f"{action.label} to runs",
        "action": action,
        "action_name": action_name,
        "form": form if action.name == "send_event" else None,
        "name_warning": warning,
        "confirmed_name": form.cleaned_data.get("name") if warning else "",
        "runs": runs,
        "legal_count": legal_count,
        "more_count": legal_count - len(runs),
        "skipped_count": queryset.count() - legal_count,
        "selected": [] if single else request.POST.getlist(ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "single": single,
        # Django's run page (one run) or list template draws the breadcrumbs.
        "base_template": "admin/change_form.html" if single else "admin/change_list.html",
        "original": single,
        "has_view_permission": True,
        "cl": {"opts": model_admin.opts},
        "media": model_admin.media,
    }
    return TemplateResponse(request, "admin/django_durable/run/action_confirmation.html", context)
