"""PostgreSQL: the ORM storage with one-statement claims and checkpoints.

``get_storage()`` chooses it, once, for an alias whose vendor is PostgreSQL. The claim
and the fenced writes are single prepared statements (one round trip each, no explicit
transaction), pruning is one statement per batch, and runs made runnable are announced
with NOTIFY (``notify.py``); everything else is the portable ORM code it inherits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar

from django.db import connections
from django.db.models import UUIDField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from ..base import ClaimedRun, Lease, NewRun, RunRecord
from ..orm import ORMStorage
from ..own_writes import own_write
from ..prune import Pruned
from . import prepared
from .arrays import uuid_array
from .claim import claim_postgresql
from .enqueue import insert_run_announced, insert_runs
from .fenced import PostgresFencedWriter
from .prune import delete_rows

T = TypeVar("T")


class PostgresStorage(ORMStorage):
    writer_class = PostgresFencedWriter
    notifies = True

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

    def together(self, operation: Callable[[], T], *, completing: Sequence[Lease] = ()) -> T:
        # No savepoint per statement: should a pooler make one fail, the whole
        # transaction fails and each completion in it is written on its own.
        with prepared.unguarded(self.alias):
            return super().together(operation, completing=completing)

    def enqueue(self, new: NewRun) -> tuple[RunRecord, bool]:
        connection = connections[self.alias]
        if (
            new.idempotency_key is not None
            or connection.in_atomic_block
            or not connection.get_autocommit()
        ):
            # A key may name a run already there; a caller's transaction announces its
            # runs once, when it commits (notify.announce).
            return super().enqueue(new)
        return own_write(
            self.alias, lambda: insert_run_announced(self.alias, new), atomic=False
        ), True

    def _insert_runs(self, news: Sequence[NewRun]) -> list[RunRecord]:
        return insert_runs(self.alias, news)

    def delete_runs(self, ids: list[uuid.UUID], *, nested: bool) -> Pruned:
        return delete_rows(self.alias, ids)

    def id_list(self, ids: list[uuid.UUID]) -> RawSQL:
        # One array parameter, not a placeholder per id: for a prune batch's hundreds of
        # ids, building and parsing the placeholders took longer than the query.
        return RawSQL("SELECT unnest(%s::uuid[])", [uuid_array(ids)], output_field=UUIDField())

    def estimated_rows(self, tables: list[str]) -> dict[str, int] | None:
        # The planner's estimate, as fresh as the last ANALYZE: COUNT(*) reads the table.
        with connections[self.alias].cursor() as cursor:
            cursor.execute(
                "SELECT relname, reltuples::bigint FROM pg_class WHERE oid IN "
                "(SELECT to_regclass(quote_ident(name)) FROM unnest(%s::text[]) AS name)",
                [tables],
            )
            # reltuples is -1 for a table never analysed or vacuumed.
            return {name: max(rows, 0) for name, rows in cursor.fetchall()}
