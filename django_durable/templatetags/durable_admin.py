"""Template filters of the admin pages: exact times and how long ago or ahead they are."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..admin.display import EXACT_TIME, format_duration, relative

register = template.Library()


@register.filter
def exact_time(moment: datetime | None) -> SafeString | str:
    """The local time to the second, with its zone, in a ``<time>`` element."""
    if not isinstance(moment, datetime):
        return "—"
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}">{}</time>', moment.isoformat(), local.strftime(EXACT_TIME)
    )


@register.filter
def from_now(moment: datetime | None) -> str:
    """ "3.2 s ago" or "in 5.0 min", counted from the time the page is drawn."""
    if not isinstance(moment, datetime):
        return ""
    return relative(moment, timezone.now())


@register.filter
def since(later: datetime | None, earlier: datetime | None) -> str:
    """The time from ``earlier`` to ``later``, as the admin writes durations."""
    if not isinstance(later, datetime) or not isinstance(earlier, datetime):
        return ""
    return format_duration(later - earlier)
