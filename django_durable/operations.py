"""Operations on runs from outside a job: send an event, cancel, retry, restart, fork."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from asgiref.sync import sync_to_async

from . import signals
from .exceptions import InvalidEventName, JobNotRegistered, RunNotFound
from .handles import RunHandle, get_run, parse_run_id
from .jobs import get_job
from .payloads import check_name, stored_args, stored_kwargs, to_json
from .signals import send_run_signal
from .status import RunStatus
from .storage import get_storage, on_commit
from .storage.fork_plan import check_from_step


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


def fork_run(
    run_id: uuid.UUID | str,
    *,
    from_step: int | str | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> RunHandle:
    """Start a new run of a finished run's job that keeps the old run's journal before
    ``from_step`` and executes the rest again, with the code deployed now; the old run is
    left as it is and the new one records ``forked_from``. Part of the caller's
    transaction.

    ``from_step`` is a journal position, an operation's name (its first occurrence), or
    None: the first operation that failed or did not finish (a child run that did not
    complete counts as a failure of the operation that started it). Child runs started
    before it are the fork's too (it waits for the same runs); events consumed before
    it stay consumed, the others are in the fork's mailbox again. ``args``/``kwargs``
    replace the old run's (each one given alone keeps the other), checked as
    ``enqueue`` checks them.

    Nothing is written when it raises: ``InvalidRunId``, ``RunNotFound``,
    ``JobNotRegistered`` (the job is not in this process's code), ``TypeError``/
    ``ValueError`` for arguments ``enqueue`` would refuse, ``ValueError`` for a run that
    is not finished (a run still going would go on beside its fork: cancel it first), a
    position out of range, a name the journal lacks, or a child run the fork would reuse
    that has not finished yet.
    """
    parsed = parse_run_id(run_id)
    check_from_step(from_step)
    if args is not None and (isinstance(args, (str, bytes)) or not isinstance(args, Sequence)):
        raise TypeError(f"args must be a list of positional arguments, not {args!r}")
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict of keyword arguments, not {kwargs!r}")
    storage = get_storage()
    old = storage.get_run(parsed)
    if old is None:
        raise RunNotFound(f"no run with id {parsed}")
    try:
        job = get_job(old.job_name)
    except JobNotRegistered as error:
        raise JobNotRegistered(f"run {parsed} cannot be forked: {error}") from None
    new_args = list(old.args if args is None else args)
    new_kwargs = dict(old.kwargs if kwargs is None else kwargs)
    job.check_arguments(new_args, new_kwargs)
    record = storage.fork(
        parsed,
        from_step=from_step,
        args=stored_args(new_args, job.name),
        kwargs=stored_kwargs(new_kwargs, job.name),
    )
    handle = RunHandle.from_record(record, created=True)
    on_commit(storage, lambda: signals.send_handle_signal(signals.run_enqueued, handle))
    return handle


# -- for async callers (each runs the function above on Django's thread-sensitive path,
# so it shares the caller's connection and transaction as Django's async ORM does) --


async def asend_event(run_id: uuid.UUID | str, name: str, payload: Any = None) -> None:
    """Async ``send_event()``."""
    await sync_to_async(send_event)(run_id, name, payload)


async def acancel_run(run_id: uuid.UUID | str) -> RunHandle:
    """Async ``cancel_run()``."""
    return await sync_to_async(cancel_run)(run_id)


async def aretry_run(run_id: uuid.UUID | str) -> RunHandle:
    """Async ``retry_run()``."""
    return await sync_to_async(retry_run)(run_id)


async def arestart_run(run_id: uuid.UUID | str) -> RunHandle:
    """Async ``restart_run()``."""
    return await sync_to_async(restart_run)(run_id)


async def afork_run(
    run_id: uuid.UUID | str,
    *,
    from_step: int | str | None = None,
    args: Sequence[Any] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> RunHandle:
    """Async ``fork_run()``."""
    return await sync_to_async(fork_run)(run_id, from_step=from_step, args=args, kwargs=kwargs)
