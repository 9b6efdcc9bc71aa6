"""What operators can do to runs from the admin, shared by the list and the detail page.

Each action knows the permission it needs and the statuses it is legal in; runs in
other statuses are skipped and reported, never failed on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html

from ..exceptions import RunNotFound
from ..models import Run
from ..operations import cancel_run, restart_run, retry_run, send_event
from ..operator_rules import RULES, Rule
from ..payloads import check_name, to_json


@dataclass(frozen=True)
class RunAction:
    name: str
    label: str  # the button
    done: str  # what the message says happened, e.g. "Retried"
    permission: str  # codename in django_durable
    rule: Rule
    # Restart and send event go through a page of their own before anything happens.
    intermediate: bool
    operation: Callable[..., Any]

    def allowed(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"django_durable.{self.permission}")


ACTIONS = {
    action.name: action
    for action in (
        RunAction(
            "retry",
            "Retry",
            "Retried",
            "retry_run",
            RULES["retry"],
            False,
            lambda run_id: retry_run(run_id),
        ),
        RunAction(
            "cancel",
            "Cancel",
            "Cancelled",
            "cancel_run",
            RULES["cancel"],
            False,
            lambda run_id: cancel_run(run_id),
        ),
        RunAction(
            "restart",
            "Restart from scratch",
            "Restarted",
            "restart_run",
            RULES["restart"],
            True,
            lambda run_id: restart_run(run_id),
        ),
        RunAction(
            "send_event",
            "Send event",
            "Sent the event to",
            "send_event",
            RULES["send_event"],
            True,
            lambda run_id, name, payload: send_event(run_id, name, payload),
        ),
    )
}


class EventForm(forms.Form):
    name = forms.CharField(
        max_length=255,
        help_text="The name the run waits for.",
        widget=forms.TextInput(attrs={"list": "durable-awaited-names", "autocomplete": "off"}),
    )
    payload = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text="JSON; empty sends null.",
    )

    def __init__(self, *args: Any, awaited: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.awaited = list(awaited)  # offered in the name's <datalist>
        if self.awaited:
            names = ", ".join(repr(name) for name in self.awaited[:5])
            # Django renders help text as HTML: the names are escaped here.
            self.fields["name"].help_text = format_html("Awaited by the selected runs: {}.", names)

    # send_event's own checks, here, so a refused value is reported on the form (not as a
    # skipped run or an error page).
    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"]
        try:
            return check_name(name, "the event name", column="RunEvent.name")
        except (TypeError, ValueError) as error:
            raise forms.ValidationError(str(error)) from error

    def clean_payload(self) -> Any:
        text = self.cleaned_data["payload"].strip()
        if not text:
            return None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}") from error
        except RecursionError as error:
            raise forms.ValidationError("Not accepted: the JSON is nested too deeply.") from error
        try:
            to_json(payload, "the payload")
        except (TypeError, ValueError) as error:
            raise forms.ValidationError(f"Not accepted: {error}") from error
        return payload


def plural(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"


def perform(
    model_admin: admin.ModelAdmin[Run],
    request: HttpRequest,
    action: RunAction,
    runs: Iterable[Run],
    *arguments: Any,
) -> int:
    """Apply ``action`` to the legal runs among ``runs``; report and log what happened."""
    done = skipped = 0
    for run in runs:
        if action.rule.refusal(run.status):
            skipped += 1
            continue
        try:
            action.operation(run.pk, *arguments)
        except (ValueError, RunNotFound):  # its status changed since the page was drawn
            skipped += 1
            continue
        detail = f" {arguments[0]!r}" if action.name == "send_event" else ""
        model_admin.log_change(request, run, f"{action.label}{detail} (admin action)")
        done += 1
    if done:
        model_admin.message_user(request, f"{action.done} {plural(done)}.", messages.SUCCESS)
    if skipped:
        model_admin.message_user(
            request,
            f"Skipped {plural(skipped)} that {'was' if skipped == 1 else 'were'} not "
            f"{action.rule.legal_text}.",
            messages.WARNING,
        )
    return done
