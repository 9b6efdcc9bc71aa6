"""How the admin pages draw durations, progress and JSON."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as format_date

from ..models import Run


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
    return format_date(local, "M j, H:i")
