"""Atomic steps: their transaction, its time limit, storage errors, and the leases it keeps.

An ``atomic=True`` step's function runs inside the transaction that writes its
checkpoint. A database error that comes from the connection rather than from the job
(terminated, lock or statement timeout, serialisation failure, deadlock: Django's
``OperationalError`` and ``InterfaceError``) before COMMIT rolled everything back, so the
step runs again on a new connection, up to ``TRIES`` times; then the run is left to
recovery. At COMMIT the outcome is unknown: the run is left to recovery too, and the
fence makes sure the step's writes land once (a committed step replays, an uncommitted
one runs again). None of these is the step's failure.

``AtomicLeases`` is the worker's side: which of its runs are inside an atomic step, so
its heartbeat leaves them out instead of waiting behind their row lock; the step's own
transaction renews their lease (see ``storage/atomic_steps.py``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError

from .conf import durable_settings
from .exceptions import AtomicStepTimeout
from .storage.base import Checkpoint, Lease, Storage
from .storage.own_writes import storage_error

logger = logging.getLogger("django_durable")

# Errors of the connection, not of the job's code: the transaction is gone, run it again.
CONNECTION_ERRORS = (OperationalError, InterfaceError)
TRIES = 3


class AtomicLeases:
    """A worker's runs inside atomic steps, and the leases their transactions renew.

    ``renewable(run_id)`` gives the worker's other live runs; ``renewed(ids, at)`` tells
    the worker that the database renewed these leases at monotonic time ``at``.
    """

    def __init__(
        self,
        *,
        holds_database: bool,
        renewable: Callable[[uuid.UUID], list[uuid.UUID]],
        renewed: Callable[[Collection[uuid.UUID], float], None],
    ) -> None:
        self.holds_database = holds_database
        self._renewable = renewable
        self._renewed = renewed
        self._beating = threading.Lock()  # held while a heartbeat statement runs
        self._changed = threading.Condition()
        self._inside: set[uuid.UUID] = set()
        self._holder: uuid.UUID | None = None  # the run whose transaction holds the database

    @contextmanager
    def heartbeat(self) -> Iterator[frozenset[uuid.UUID] | None]:
        """Held around the worker's heartbeat: the runs to leave out, or None to skip it
        (an atomic step's transaction holds the database and renews every lease)."""
        with self._beating:
            with self._changed:
                skip = self._holder is not None
                inside = frozenset(self._inside)
            yield None if skip else inside

    def entering(self, run_id: uuid.UUID) -> list[uuid.UUID]:
        """Before the transaction begins: the heartbeat stops renewing ``run_id``. Returns
        the runs its transaction should renew too (where it holds the database)."""
        # A heartbeat in flight may include run_id: let it finish first.
        with self._beating, self._changed:
            self._inside.add(run_id)
        return self._renewable(run_id) if self.holds_database else []

    def holding(self, run_id: uuid.UUID) -> None:
        """The transaction has begun (and where it holds the database, holds it)."""
        if self.holds_database:
            with self._changed:
                self._holder = run_id

    def left(self, run_id: uuid.UUID, renewed: Collection[uuid.UUID], at: float) -> None:
        """The transaction ended; ``renewed`` are the leases its COMMIT renewed."""
        if renewed:  # first: a run waiting for the database must see its lease renewed
            self._renewed(renewed, at)
        with self._changed:
            self._inside.discard(run_id)
            if self._holder == run_id:
                self._holder = None
            self._changed.notify_all()

    def wait_for_database(self, run_id: uuid.UUID) -> None:
        """Before another run's operation: while an atomic step's transaction holds the
        database nothing can be written and no heartbeat runs, so wait until it ends and
        has renewed this run's lease, rather than judge the lease by a stale clock."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._holder in (None, run_id),
                timeout=durable_settings.ATOMIC_STEP_TIMEOUT + 1,
            )


def run_atomic_step(
    storage: Storage,
    lease: Lease,
    leases: AtomicLeases | None,
    name: str,
    body: Callable[[], Any],
    batch_for: Callable[[Any], Checkpoint],
) -> tuple[Any, Checkpoint]:
    """Run ``body`` in the step's transaction and write ``batch_for(result)`` with it."""
    timeout = durable_settings.ATOMIC_STEP_TIMEOUT
    for attempt in range(1, TRIES + 1):
        renew = leases.entering(lease.run_id) if leases else []
        began = time.monotonic()
        phase = "begin"
        renewed: frozenset[uuid.UUID] = frozenset()
        renewed_at = began
        try:
            with storage.atomic_step(lease, renew=renew) as tx:
                if leases:
                    leases.holding(lease.run_id)
                phase = "body"
                result = body()
                if time.monotonic() - began > timeout:
                    raise _timeout(name, timeout)
                phase = "write"
                batch = batch_for(result)
                renewed_at = time.monotonic()
                renewed = tx.write(batch)
                phase = "commit"
            phase = "committed"
            return result, batch
        except DatabaseError as error:
            # Ended by the database's own limit (at COMMIT the outcome is unknown, below).
            if phase != "commit" and time.monotonic() - began >= timeout:
                storage.discard_connection()
                raise _timeout(name, timeout) from error
            if not isinstance(error, CONNECTION_ERRORS):
                if phase == "body":
                    raise  # the job's own error (an IntegrityError, say): the step failed
                raise storage_error(lease, error, f"atomic step {name!r}") from error
            storage.discard_connection()
            if phase == "commit" or attempt == TRIES:
                what = "at COMMIT" if phase == "commit" else f"after {TRIES} tries"
                # A lock error is StorageBusy: nothing was written, the run is released.
                raise storage_error(lease, error, f"atomic step {name!r} {what}") from error
            logger.warning(
                "run=%s step=%s event=atomic_step_retry attempt=%s error=%s",
                lease.run_id,
                name,
                attempt,
                str(error).strip(),
            )
        finally:
            if leases:
                leases.left(lease.run_id, renewed if phase == "committed" else (), renewed_at)
    raise AssertionError("unreachable")


def _timeout(name: str, timeout: float) -> AtomicStepTimeout:
    return AtomicStepTimeout(
        f"atomic step {name!r} held its transaction longer than "
        f"DURABLE['ATOMIC_STEP_TIMEOUT'] ({timeout:g}s) and was rolled back; keep atomic "
        "steps short, and do long database work in a plain step with its own transactions"
    )
