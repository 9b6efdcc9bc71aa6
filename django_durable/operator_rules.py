"""Which operator operations are legal for a run in which status, and how a refusal reads.

The admin's actions and ``manage.py durable`` both ask here, so an operator gets the same
answer and the same words from either.
"""

from __future__ import annotations

from dataclasses import dataclass

from .status import FINISHED_STATUSES, RunStatus

UNFINISHED = frozenset(set(RunStatus) - FINISHED_STATUSES)


@dataclass(frozen=True)
class Rule:
    legal: frozenset[str]
    legal_text: str  # "failed or cancelled": what a run must be for the operation

    def refusal(self, status: str) -> str | None:
        """Why a run in ``status`` is refused, or None when the operation is legal."""
        if status in self.legal:
            return None
        return f"it is {status}, not {self.legal_text}"


RULES = {
    "retry": Rule(frozenset({RunStatus.FAILED, RunStatus.CANCELLED}), "failed or cancelled"),
    "cancel": Rule(UNFINISHED, "unfinished"),
    "restart": Rule(FINISHED_STATUSES, "finished"),
    "send_event": Rule(UNFINISHED, "unfinished"),
    # A run still going would go on beside its fork, both doing the same work.
    "fork": Rule(FINISHED_STATUSES, "finished"),
}
