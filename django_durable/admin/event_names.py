"""The send-event form's names: the ones the selected runs wait for, offered first, and
a warning (the operator may still send) when the name given is awaited by none of them.

An event no run waits for is not lost, it waits in the run's mailbox for a
``ctx.wait_for_event`` of that name; but a typo would leave the run waiting, so the form
says so before sending.
"""

from __future__ import annotations

from collections import Counter

from django.db.models import QuerySet

from ..models import Run
from ..status import RunStatus

# How many waiting runs are read for their awaited names.
NAMES_FROM = 200


def awaited_names(runs: QuerySet[Run]) -> list[str]:
    """The event names waiting runs among ``runs`` wait for, most awaited first."""
    waits = runs.filter(status=RunStatus.WAITING).values_list("waiting_for", flat=True)
    names = Counter(
        wait["event"]
        for wait in waits[:NAMES_FROM]
        if isinstance(wait, dict) and isinstance(wait.get("event"), str)
    )
    return [name for name, _ in names.most_common()]


def name_warning(runs: QuerySet[Run], name: str, awaited: list[str]) -> str | None:
    """Why sending ``name`` to ``runs`` may be a mistake, or None."""
    count = runs.count()
    waiting = runs.filter(status=RunStatus.WAITING, waiting_for__event=name).count()
    if waiting == count:
        return None
    if count == 1:
        said = f"waits for {awaited[0]!r}" if awaited else "is not waiting for an event"
        return f"This run {said}, not {name!r}."
    awaited_text = ", ".join(repr(n) for n in awaited[:5]) or "none"
    return (
        f"{count - waiting} of these {count} runs are not waiting for {name!r} "
        f"(names awaited: {awaited_text})."
    )
