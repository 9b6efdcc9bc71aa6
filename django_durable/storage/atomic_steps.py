"""The transaction of an ``atomic=True`` step: fenced, time-limited, renewing its lease.

The heartbeat leaves runs in atomic steps out (it would wait behind their row lock), so
the step's transaction renews its own lease when it writes its checkpoint, just before
COMMIT. While it is open the run's row is locked and the sweep, which skips locked rows,
cannot take the run over. Where the transaction holds the whole database (SQLite) no
heartbeat can run meanwhile, so it renews the worker's other leases too.

A worker frozen inside the transaction would hold that lock for good, so the database is
told to end it: PostgreSQL through transaction-local ``idle_in_transaction_session_timeout``
and ``statement_timeout`` set by the fence statement itself (no extra round trip),
MariaDB through the session's ``idle_transaction_timeout`` and ``max_statement_time``,
set after BEGIN and reset after the transaction (``mysql/``). SQLite and MySQL have no
such limit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections

from ..conf import durable_settings
from ..models import Run
from ..status import RunStatus
from . import leases
from .base import Checkpoint, Lease
from .fenced import FencedWriter
from .own_writes import own_transaction


class ORMAtomicStep:
    """``AtomicStepTransaction`` on the ORM: the fence is already taken."""

    def __init__(
        self, alias: str, writer: FencedWriter, lease: Lease, renew: Collection[uuid.UUID]
    ) -> None:
        self.alias = alias
        self.writer = writer
        self.lease = lease
        self.renew = renew

    def write(self, checkpoint: Checkpoint) -> frozenset[uuid.UUID]:
        expiry = leases.expiry()
        changes: dict[str, Any] = {"lease_expires_at": expiry}
        if checkpoint.progress is not None:
            changes["progress"] = checkpoint.progress
        # The renewal rides in the statement that writes the checkpoint (on PostgreSQL,
        # one statement with the journal entry's INSERT).
        self.writer.write_in_transaction(self.lease, changes, checkpoint)
        renewed = {self.lease.run_id}
        if self.renew:
            others = Run.objects.using(self.alias).filter(
                pk__in=list(self.renew), lease_owner=self.lease.owner, status=RunStatus.RUNNING
            )
            others.update(lease_expires_at=expiry)
            renewed.update(others.values_list("pk", flat=True))
        return frozenset(renewed)


@contextmanager
def atomic_step_transaction(
    alias: str,
    writer: FencedWriter,
    lease: Lease,
    *,
    renew: Collection[uuid.UUID],
    limits: Callable[[float | None], None] | None,
) -> Iterator[ORMAtomicStep]:
    """The step's transaction; ``renew``: the worker's other leases to renew with its
    checkpoint; ``limits``: sets the session's time limits (None resets them), where
    the fence statement cannot."""
    connection = connections[alias]
    timeout = durable_settings.ATOMIC_STEP_TIMEOUT
    try:
        # Not run again on a lock error here: the caller decides (the body is job code).
        with own_transaction(alias):
            if limits is not None:
                limits(timeout)
            writer.fence(lease, {}, check_cancel=True, select=writer.time_limits(timeout))
            yield ORMAtomicStep(alias, writer, lease, renew)
    finally:
        if limits is not None and connection.connection is not None:
            try:
                limits(None)
            except DatabaseError:
                connection.close()  # a new connection starts with the server's defaults
