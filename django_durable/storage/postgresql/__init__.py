"""PostgreSQL: the ORM storage with one-statement claims and checkpoints.

``get_storage()`` chooses it, once, for an alias whose vendor is PostgreSQL. The claim
and the fenced writes are single prepared statements (one round trip each, no explicit
transaction); everything else is the portable ORM code it inherits.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence

from django.utils import timezone

from ..base import ClaimedRun, NewRun, RunRecord
from ..orm import ORMStorage
from ..prune import Pruned
from .claim import claim_postgresql
from .enqueue import insert_runs
from .fenced import PostgresFencedWriter
from .prune import delete_rows


class PostgresStorage(ORMStorage):
    writer_class = PostgresFencedWriter

    def claim(
        self,
        *,
        owner: str,
        job_names: Collection[str],
        queues: Sequence[str] | None,
        limit: int,
        timeouts: Mapping[str, float] | None = None,
    ) -> list[ClaimedRun]:
        if not job_names or limit < 1:
            return []
        return claim_postgresql(
            self.alias,
            owner=owner,
            token=uuid.uuid4(),
            now=timezone.now(),
            job_names=job_names,
            queues=queues,
            limit=limit,
            timeouts=timeouts or {},
        )

    def _insert_runs(self, news: Sequence[NewRun]) -> list[RunRecord]:
        return insert_runs(self.alias, news)

    def delete_runs(self, ids: list[uuid.UUID], *, nested: bool) -> Pruned:
        return delete_rows(self.alias, ids)
