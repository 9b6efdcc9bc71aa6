"""Operations on runs from outside a job: send an event, cancel, retry, restart."""

from __future__ import annotations

import uuid
from typing import Any

from . import signals
from .exceptions import InvalidEventName
from .handles import RunHandle, get_run, parse_run_id
from .payloads import check_name, to_json
from .signals import send_run_signal
from .status import RunStatus
from .storage import get_storage, on_commit


def send_event(run_id: uuid.UUID | str, name: str, payload: Any = None) -> None:
    """Deliver event ``name`` to a run; the oldest unconsumed one is taken by the run's
    next ``ctx.wait_for_event(name)``. Part of the caller's transaction.

    Each mistake has its own exception, checked in this order; all but ``RunNotFound`` and
    ``TypeError`` are ``ValueError`` subclasses too:

    - ``InvalidRunId``: ``run_id`` is not a UUID.
    - ``InvalidEventName``: ``name`` is not a non-empty string of at most 255 characters,
      or holds a NUL character or a lone surrogate.
    - ``TypeError`` (a value JSON cannot hold) or ``ValueError`` (NaN, infinity, a value
      no database gives back unchanged, see "What can be stored" in Concepts) for a
      payload, naming where in it the value is; ``PayloadTooLarge`` for one over
      ``DURABLE["MAX_PAYLOAD_BYTES"]``.
    - ``RunNotFound``: no run has this id.
    - ``RunFinished``: the run is completed, failed or cancelled.
    """
    parsed = parse_run_id(run_id)
    try:
        check_name(name, "an event name", column="RunEvent.name")
    except (TypeError, ValueError) as error:
        raise InvalidEventName(str(error)) from None
    get_storage().send_event(parsed, name, to_json(payload, "the payload", owner=f"event {name!r}"))


def cancel_run(run_id: uuid.UUID | str) -> RunHandle:
    """Cancel a run and its unfinished children.

    Pending and waiting runs are cancelled at once; a running run stops at its next
    operation (its worker learns of it through its heartbeat). Finished runs are left
    as they are. ``RunNotFound`` for an unknown id.
    """
    storage = get_storage()
    storage.cancel(parse_run_id(run_id))
    handle = get_run(run_id)
    if handle.status == RunStatus.CANCELLED:  # a running run signals when its worker stops
        on_commit(storage, lambda: send_run_signal(signals.run_cancelled, handle.id, storage))
    return handle


def retry_run(run_id: uuid.UUID | str) -> RunHandle:
    """Resume a failed or cancelled run at its first unfinished operation, as its next
    attempt (finished steps are not run again). ``ValueError`` for other statuses."""
    get_storage().retry(parse_run_id(run_id))
    return get_run(run_id)


def restart_run(run_id: uuid.UUID | str) -> RunHandle:
    """Run a finished run again from scratch, as its next attempt: its journal is
    cleared, so every step executes again, and the events it consumed are delivered
    again. Logs and past errors are kept. ``ValueError`` for an unfinished run."""
    get_storage().restart(parse_run_id(run_id))
    return get_run(run_id)
