"""A paginator that never counts a whole table of runs."""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator

# Counting stops here: "10,000+ runs" is as useful to an operator as the exact figure
# and costs a bounded scan instead of a COUNT(*) over millions of rows.
COUNT_LIMIT = 10_000


class CappedCountPaginator(Paginator):  # type: ignore[type-arg]  # any object list
    """Counts at most ``COUNT_LIMIT + 1`` rows; beyond that, pages stop at the cap."""

    @cached_property
    def count(self) -> int:
        probe = self.object_list[: COUNT_LIMIT + 1]
        return int(probe.count()) if hasattr(probe, "count") else len(probe)

    @property
    def capped(self) -> bool:
        return self.count > COUNT_LIMIT
