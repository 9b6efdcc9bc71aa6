"""How the admin pages draw durations, progress and JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as format_date
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..models import Run, Step
from ..status import StepKind

# Times on the run page and the overview: to the second, with the zone.
EXACT_TIME = "%Y-%m-%d %H:%M:%S %Z"


def duration(run: Run, now: datetime) -> timedelta | None:
    if run.started_at is None:
        return None
    return (run.finished_at or now) - run.started_at


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def progress_percent(progress: Any) -> float | None:
    if not isinstance(progress, dict):
        return None
    done, total = progress.get("done"), progress.get("total")
    if not isinstance(done, int | float) or not isinstance(total, int | float) or total <= 0:
        return None
    return max(0.0, min(100.0, 100.0 * done / total))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


def short_time(moment: datetime | None, now: datetime) -> str:
    """A compact local time for list columns: the time today, the date otherwise."""
    if moment is None:
        return "—"
    local = timezone.localtime(moment)
    if local.date() == timezone.localtime(now).date():
        return format_date(local, "H:i:s")
    return format_date(local, "M j, H:i:s")


def relative(moment: datetime, now: datetime) -> str:
    """How far ``moment`` is from ``now``: "3.2 s ago", "in 5.0 min"."""
    if moment <= now:
        return f"{format_duration(now - moment)} ago"
    return f"in {format_duration(moment - now)}"


def describe_wait(run: Run, waiting_step: Step | None) -> SafeString:
    """What a waiting run waits for, in words: an event, children, a timer, a retry."""
    waiting_for = run.waiting_for or {}
    kind = waiting_step.kind if waiting_step else None
    name = waiting_step.name if waiting_step else ""
    if isinstance(waiting_for.get("event"), str):
        return format_html("the event <code>{}</code>", waiting_for["event"])
    children = waiting_for.get("children")
    if isinstance(children, list):
        count = len(children)
        return format_html("{} child run{} to finish", count, "" if count == 1 else "s")
    if waiting_for:  # a shape this version does not write: show it as it is
        return format_html("<code>{}</code>", json.dumps(waiting_for, sort_keys=True))
    if kind == StepKind.SLEEP:
        return format_html("the end of the sleep <code>{}</code>", name)
    if kind == StepKind.STEP:
        return format_html("the next attempt of the step <code>{}</code>", name)
    return format_html("{}", "its wake time" if run.wake_at else "nothing recorded")
