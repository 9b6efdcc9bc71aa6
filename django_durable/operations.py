"""Operations on runs from outside a job: send an event, cancel, retry, restart."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from . import signals
from .conf import durable_settings
from .handles import RunHandle, get_run
from .payloads import to_json
from .runner import send_run_signal
from .status import RunStatus
from .storage import get_storage


def send_event(run_id: uuid.UUID | str, name: str, payload: Any = None) -> None:
    """Deliver event ``name`` to a run; the oldest unconsumed one is taken by the run's
    next ``ctx.wait_for_event(name)``. Part of the caller's transaction.

    ``RunNotFound`` for an unknown run, ``ValueError`` for a finished one, and
    ``TypeError``/``ValueError`` for a payload that is not JSON.
    """
    if not isinstance(name, str) or not name or len(name) > 255:
        raise ValueError("an event name must be a non-empty string of at most 255 characters")
    get_storage().send_event(uuid.UUID(str(run_id)), name, to_json(payload, f"event {name!r}"))


def cancel_run(run_id: uuid.UUID | str) -> RunHandle:
    """Cancel a run and its unfinished children.

    Pending and waiting runs are cancelled at once; a running run stops at its next
    operation (its worker learns of it through its heartbeat). Finished runs are left
    as they are. ``RunNotFound`` for an unknown id.
    """
    storage = get_storage()
    storage.cancel(uuid.UUID(str(run_id)))
    handle = get_run(run_id)
    if handle.status == RunStatus.CANCELLED:  # a running run signals when its worker stops
        transaction.on_commit(
            lambda: send_run_signal(signals.run_cancelled, handle.id, storage),
            using=durable_settings.DATABASE,
        )
    return handle


def retry_run(run_id: uuid.UUID | str) -> RunHandle:
    """Resume a failed or cancelled run at its first unfinished operation, as its next
    attempt (finished steps are not run again). ``ValueError`` for other statuses."""
    get_storage().retry(uuid.UUID(str(run_id)))
    return get_run(run_id)


def restart_run(run_id: uuid.UUID | str) -> RunHandle:
    """Run a finished run again from scratch, as its next attempt: its journal is
    cleared, so every step executes again, and the events it consumed are delivered
    again. Logs and past errors are kept. ``ValueError`` for an unfinished run."""
    get_storage().restart(uuid.UUID(str(run_id)))
    return get_run(run_id)
