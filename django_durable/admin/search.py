"""Search runs by id (whole or a prefix), idempotency key or concurrency key."""

from __future__ import annotations

import re
import uuid

from django.db.models import Q, QuerySet

from ..models import Run

HEX = re.compile(r"[0-9a-f]{4,32}")


def search_runs(queryset: QuerySet[Run], term: str) -> QuerySet[Run]:
    term = term.strip()
    if not term:
        return queryset
    digits = term.lower().replace("-", "")
    if HEX.fullmatch(digits):
        # An id prefix is a range of the primary key, answered by its index. Keys are
        # looked at only if no id matches, as they are not indexed on their own.
        by_id = queryset.filter(
            pk__gte=uuid.UUID(digits.ljust(32, "0")), pk__lte=uuid.UUID(digits.ljust(32, "f"))
        )
        if by_id.exists():
            return by_id
    return queryset.filter(Q(idempotency_key=term) | Q(concurrency_key=term))
