"""The claim: lease the next runnable runs to a worker in one short transaction.

PostgreSQL claims with one prepared statement (``postgresql/claim.py``); this module's
ORM claim serves MySQL/MariaDB and SQLite.

Claim, stamp the lease, commit, and only then execute: the transaction holds row locks
for two statements, never for the duration of a run. Runs whose concurrency key is held
by another run are filtered out, and the claim takes the key's slot in the same
transaction, so two workers can never both start runs of one key.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import Count, Exists, F, OuterRef, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..claim_order import CLAIM_ORDER, claim_order_sql, claim_sort_key
from ..models import ConcurrencySlot, Run
from ..status import RunStatus
from . import leases
from .base import ClaimedRun, Lease
from .convert import RUN_FIELDS, run_record
from .dbclock import DbNow, database_now
from .own_writes import own_write


def claim_runs(
    alias: str,
    *,
    owner: str,
    job_names: Collection[str],
    queues: Sequence[str] | None,
    limit: int,
    timeouts: Mapping[str, float] | None = None,
) -> list[ClaimedRun]:
    if not job_names or limit < 1:
        return []
    # Without SKIP LOCKED (SQLite) there is one writer at a time: one UPDATE claims.
    single_writer = not connections[alias].features.has_select_for_update_skip_locked
    token = uuid.uuid4()
    now = timezone.now()
    time_left: dict[Any, float] = {}

    def claim_once() -> list[tuple[Run, bool]]:
        take = _claim_sqlite if single_writer else _claim_locking
        runs = take(
            alias,
            owner=owner,
            token=token,
            now=now,
            job_names=job_names,
            queues=queues,
            limit=limit,
        )
        time_left.update(_set_deadlines(alias, [run for run, _ in runs], timeouts or {}))
        return runs

    runs = own_write(alias, claim_once)
    claimed = []
    for run, fresh in runs:
        run.status = RunStatus.RUNNING
        run.started_at = run.started_at or now
        lease = Lease.taken(run, token=token, owner=owner)
        claimed.append(
            ClaimedRun(
                run=run_record(run), lease=lease, fresh=fresh, time_left=time_left.get(run.pk)
            )
        )
    return claimed


def _set_deadlines(alias: str, runs: list[Run], timeouts: Mapping[str, float]) -> dict[Any, float]:
    """Give runs of jobs with a timeout their deadline at their first claim (database
    clock); return each claimed run's seconds left before its deadline."""
    for run in runs:
        if run.deadline is None and run.job_name in timeouts:
            Run.objects.using(alias).filter(pk=run.pk, deadline__isnull=True).update(
                deadline=DbNow(timeouts[run.job_name])
            )
    timed = [run for run in runs if run.deadline is not None or run.job_name in timeouts]
    if not timed:
        return {}
    deadlines = dict(
        Run.objects.using(alias)
        .filter(pk__in=[run.pk for run in timed])
        .values_list("pk", "deadline")
    )
    now = database_now(alias)
    for run in timed:
        run.deadline = deadlines[run.pk]
    return {
        pk: (deadline - now).total_seconds()
        for pk, deadline in deadlines.items()
        if deadline is not None
    }


def _key_is_free() -> Any:
    held_by_another = ConcurrencySlot.objects.filter(key=OuterRef("concurrency_key")).exclude(
        run_id=OuterRef("pk")
    )
    return ~Exists(held_by_another)


def _candidates(
    alias: str,
    job_names: Collection[str],
    queues: Sequence[str] | None,
    status: RunStatus = RunStatus.PENDING,
) -> QuerySet[Run]:
    runs = Run.objects.using(alias).filter(status=status, job_name__in=job_names)
    if queues is not None:
        runs = runs.filter(queue_name__in=queues)
    return runs.filter(_key_is_free())


def claimable_exists(alias: str, job_names: Collection[str], queues: Sequence[str] | None) -> bool:
    """Is a run a claim with these arguments could take pending, or due to become so?"""
    if not job_names:
        return False
    if _candidates(alias, job_names, queues).exists():
        return True
    waiting = _candidates(alias, job_names, queues, RunStatus.WAITING)
    return waiting.filter(wake_at__lte=DbNow()).exists()


def unclaimable_job_names(alias: str, known: Collection[str]) -> dict[str, int]:
    """Pending runs per job name that no claim with ``known`` job names can take."""
    rows = (
        Run.objects.using(alias)
        .pending()
        .exclude(job_name__in=list(known))
        .values("job_name")
        .annotate(count=Count("pk"))
        .order_by("job_name")
    )
    return {row["job_name"]: row["count"] for row in rows}


def _take_slots(alias: str, runs: list[Run]) -> set[uuid.UUID]:
    """Take the key slot of each keyed run; return the runs that hold theirs.

    A conflicting insert is ignored: the key is held by a run another worker claimed
    (or by an earlier run in this batch), and that run keeps it.
    """
    keyed = [run for run in runs if run.concurrency_key]
    if not keyed:
        return set()
    slots = ConcurrencySlot.objects.using(alias)
    slots.bulk_create(
        [ConcurrencySlot(key=str(run.concurrency_key), run_id=run.pk) for run in keyed],
        ignore_conflicts=True,
    )
    return set(slots.filter(run_id__in=[run.pk for run in keyed]).values_list("run_id", flat=True))


def _without_key_losers(alias: str, runs: list[Run]) -> tuple[list[Run], list[Run]]:
    held = _take_slots(alias, runs)
    won = [run for run in runs if not run.concurrency_key or run.pk in held]
    lost = [run for run in runs if run.concurrency_key and run.pk not in held]
    return won, lost


def _claim_locking(
    alias: str,
    *,
    owner: str,
    token: uuid.UUID,
    now: datetime,
    job_names: Collection[str],
    queues: Sequence[str] | None,
    limit: int,
) -> list[tuple[Run, bool]]:
    # MySQL/MariaDB: lock the next runnable rows, skipping rows other workers hold,
    # then stamp the lease by primary key. The filter and ORDER BY match the
    # durable_run_claim index column for column.
    runs = list(
        _candidates(alias, job_names, queues)
        .select_for_update(skip_locked=True)
        .order_by(*CLAIM_ORDER)
        .only(*RUN_FIELDS)[:limit]
    )
    runs, _ = _without_key_losers(alias, runs)
    if runs:
        Run.objects.using(alias).filter(pk__in=[run.pk for run in runs]).update(
            status=RunStatus.RUNNING,
            lease_owner=owner,
            lease_token=token,
            lease_expires_at=leases.expiry(),
            started_at=Coalesce(F("started_at"), now),
        )
    # A fork never ran either, but starts with a journal (fork_run).
    return [(run, run.started_at is None and run.forked_from is None) for run in runs]


def _claim_sqlite(
    alias: str,
    *,
    owner: str,
    token: uuid.UUID,
    now: datetime,
    job_names: Collection[str],
    queues: Sequence[str] | None,
    limit: int,
) -> list[tuple[Run, bool]]:
    # SQLite has one writer at a time and no SKIP LOCKED: one conditional
    # UPDATE ... RETURNING picks and leases the rows in a single statement.
    ops = connections[alias].ops
    expiry, expiry_params = leases.expiry_sql(connections[alias])
    table = ops.quote_name(Run._meta.db_table)
    slot_table = ops.quote_name(ConcurrencySlot._meta.db_table)
    column_of = {field.name: str(field.column) for field in Run._meta.concrete_fields}
    columns = ", ".join(ops.quote_name(column_of[name]) for name in RUN_FIELDS)
    where = f"status = %s AND job_name IN ({', '.join(['%s'] * len(job_names))})"
    params: list[Any] = [RunStatus.PENDING, *job_names]
    if queues is not None:
        where += f" AND queue_name IN ({', '.join(['%s'] * len(queues))})"
        params += list(queues)
    where += (
        f" AND NOT EXISTS (SELECT 1 FROM {slot_table} AS s WHERE s.key = {table}.concurrency_key"
        f" AND s.run_id != {table}.id)"
    )
    sql = (
        f"UPDATE {table} SET status = %s, lease_owner = %s, lease_token = %s, "
        f"lease_expires_at = {expiry}, "
        "started_at = COALESCE(started_at, %s) "
        f"WHERE id IN (SELECT id FROM {table} WHERE {where} "
        f"ORDER BY {claim_order_sql(ops.quote_name)} LIMIT %s) "
        f"RETURNING {columns}"
    )
    head = [
        RunStatus.RUNNING,
        owner,
        token.hex,
        *expiry_params,
        ops.adapt_datetimefield_value(now),
    ]
    runs = list(Run.objects.using(alias).raw(sql, [*head, *params, limit]))
    # RETURNING gives rows in no particular order, and values after the update: a run
    # whose started_at is this claim's own timestamp had never started before.
    runs.sort(key=claim_sort_key)
    runs, lost = _without_key_losers(alias, runs)
    for run in lost:  # two runs of one key in this batch: the later one waits
        Run.objects.using(alias).filter(pk=run.pk).update(
            status=RunStatus.PENDING,
            lease_owner=None,
            lease_token=None,
            lease_expires_at=None,
            started_at=None if run.started_at == now else run.started_at,
        )
    return [(run, run.started_at == now and run.forked_from is None) for run in runs]
