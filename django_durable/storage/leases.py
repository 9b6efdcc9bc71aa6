"""A run's lease, written once: the condition that fences every write by its holder,
when a lease taken or renewed now expires, when it has expired, and the heartbeat that
renews a worker's leases.

All three are by the database's clock and row, never a worker's. The ORM code, the
hand-built SQL and PostgreSQL's prepared statements take them from here.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q
from django.db.models.sql import Query

from ..conf import durable_settings
from ..models import Run
from ..status import RunStatus
from .base import Heartbeat, Lease
from .dbclock import DbNow

# A run's changes when its lease ends, whoever ends it.
CLEAR_LEASE = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def expiry() -> DbNow:
    """When a lease taken or renewed now expires: the database's now + ``STALE_AFTER``."""
    return DbNow(durable_settings.STALE_AFTER)


def expiry_sql(connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """``expiry()`` as SQL and its parameters, for hand-built statements."""
    compiler = Query(Run).get_compiler(connection=connection)
    sql, params = compiler.compile(expiry())
    return sql, list(params)


def expired() -> Q:
    """Running runs whose holder stopped renewing: anyone may take them over."""
    return Q(status=RunStatus.RUNNING, lease_expires_at__lt=DbNow())


def fence(lease: Lease, *, check_cancel: bool = False) -> Q:
    """The run row ``lease`` may write: its run, still running under its token (with
    ``check_cancel``, and not asked to cancel)."""
    held = Q(pk=lease.run_id, lease_token=lease.token, status=RunStatus.RUNNING)
    return held & Q(cancel_requested=False) if check_cancel else held


def fence_sql(connection: BaseDatabaseWrapper, *, check_cancel: bool) -> str:
    """``fence`` as SQL on the run table, taking ``fence_params``. The status is a
    literal, so a prepared statement's generic plan is the same for every lease."""
    quote = connection.ops.quote_name
    run = quote(Run._meta.db_table)
    token = quote(str(Run._meta.get_field("lease_token").column))
    sql = (
        f"{run}.{quote(str(Run._meta.pk.column))} = %s AND {run}.{token} = %s "
        f"AND {run}.status = '{RunStatus.RUNNING.value}'"
    )
    return f"{sql} AND NOT {run}.cancel_requested" if check_cancel else sql


def fence_params(lease: Lease, connection: BaseDatabaseWrapper) -> list[Any]:
    fields = Run._meta.pk, Run._meta.get_field("lease_token")
    return [
        field.get_db_prep_value(value, connection)
        for field, value in zip(fields, (lease.run_id, lease.token), strict=True)
    ]


def renew(alias: str, owner: str, run_ids: Collection[uuid.UUID]) -> Heartbeat:
    """A heartbeat: renew every lease ``owner`` still holds among ``run_ids`` in one
    UPDATE, and read back which it renewed and which were asked to cancel."""
    if not run_ids:
        return Heartbeat(renewed=frozenset(), cancel_requested=frozenset())
    held = Run.objects.using(alias).filter(
        pk__in=list(run_ids), status=RunStatus.RUNNING, lease_owner=owner
    )
    held.update(lease_expires_at=expiry())
    # Read after the UPDATE: a run taken over in between is left out (the worker gives
    # it up, as it must), and no run becomes this owner's without its main thread's
    # claim, so every run read back is one the UPDATE renewed.
    rows = list(held.values_list("pk", "cancel_requested"))
    return Heartbeat(
        renewed=frozenset(pk for pk, _ in rows),
        cancel_requested=frozenset(pk for pk, cancel in rows if cancel),
    )
