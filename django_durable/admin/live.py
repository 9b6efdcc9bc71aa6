"""What the page of a running run polls: its status, progress and duration as JSON.

One query for the run. The page's script sets only text and sizes from it (never HTML),
and reloads the page once the run has left ``running``, to show its journal and outcome.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from ..models import Run
from ..status import RunStatus
from .display import duration, format_duration, progress_percent

# The columns the JSON is made of.
LIVE_COLUMNS = ("id", "status", "progress", "created_at", "started_at", "finished_at")
# How often the page asks, in milliseconds.
POLL_INTERVAL_MS = 2000


def progress_text(progress: Any) -> str:
    """ "3 / 10 copying" as the run page writes progress."""
    if not isinstance(progress, dict):
        return ""
    done, total, message = progress.get("done"), progress.get("total"), progress.get("message")
    text = "" if done is None else str(done)
    if total:
        text += f" / {total}"
    return f"{text} {message}".strip() if message else text


def live_state(run: Run) -> dict[str, Any]:
    percent = progress_percent(run.progress)
    return {
        "status": run.status,
        "status_label": run.get_status_display(),
        "running": run.status == RunStatus.RUNNING,
        "progress": run.progress,
        "progress_percent": None if percent is None else round(percent, 1),
        "progress_text": progress_text(run.progress),
        "duration": format_duration(duration(run, timezone.now())),
    }
