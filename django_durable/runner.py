"""Execute one claimed run: replay its journal, call the job, record how it ended."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from asgiref.sync import async_to_sync

from . import signals, tracing
from .async_context import AsyncRunContext, Database, thread_sensitive
from .atomic import AtomicLeases
from .conf import durable_settings
from .context import RunContext
from .exceptions import (
    LeaseLost,
    MalformedRun,
    NonDeterminismError,
    RunAbandoned,
    RunCancelled,
    RunTimedOut,
    Suspended,
    WorkerStopping,
)
from .jobs import Job
from .journal import Journal, describe_error
from .malformed import describe_stored, error_history, report_malformed
from .payloads import to_json
from .signals import send_run_signal
from .status import RunStatus
from .storage.base import Checkpoint, ClaimedRun, Lease, RunRecord, Storage, StorageBusy

logger = logging.getLogger("django_durable")


def execute_run(
    storage: Storage,
    claimed: ClaimedRun,
    job: Job,
    *,
    before_operation: Callable[[], None] | None = None,
    before_end: Callable[[], None] | None = None,
    atomic_leases: AtomicLeases | None = None,
) -> RunStatus | None:
    """Run ``claimed`` to its end, its next failure, or the worker's shutdown.

    ``before_operation`` is called before each durable operation executes; it raises
    ``WorkerStopping`` to release the run there, or ``LeaseLost`` when the worker can no
    longer vouch for its lease. ``before_end`` is called before the write that ends this
    execution (complete, fail, cancel, release, suspend): from then on the lease may be
    gone because this execution gave it up. ``atomic_leases`` is the worker's record of
    runs in atomic steps (``atomic.py``). Returns the status the run was left in, or None
    when this worker lost the lease (another worker owns the run, so this one must not
    touch it).
    """
    if job.is_async:  # on a thread slot: the job gets an event loop of its own
        return async_to_sync(aexecute_run)(
            storage,
            claimed,
            job,
            database=thread_sensitive,
            before_operation=before_operation,
            before_end=before_end,
            atomic_leases=atomic_leases,
        )
    if before_end is not None:
        storage = cast(Storage, _Ending(storage, before_end))
    with tracing.run_span(claimed.run) as span:
        status = _execute(storage, claimed, job, before_operation, atomic_leases)
        tracing.set_outcome(span, status, failed=status == RunStatus.FAILED)
        return status


class _Ending:
    """``storage``, calling ``before_end`` before each write that ends an execution."""

    ENDS = frozenset({"complete", "fail", "finish_cancelled", "release", "suspend"})

    def __init__(self, storage: Storage, before_end: Callable[[], None]) -> None:
        self._storage = storage
        self._before_end = before_end

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._storage, name)
        if name not in self.ENDS:
            return method

        def ending(*args: Any, **kwargs: Any) -> Any:
            self._before_end()
            return method(*args, **kwargs)

        return ending


def _execute(
    storage: Storage,
    claimed: ClaimedRun,
    job: Job,
    before_operation: Callable[[], None] | None,
    atomic_leases: AtomicLeases | None,
) -> RunStatus | None:
    began = time.monotonic()
    started = _start(
        storage,
        claimed,
        job,
        began,
        before_operation,
        atomic_leases,
        durable_settings.LOG_BUFFER_SIZE,
    )
    if not isinstance(started, Journal):
        return started
    run = claimed.run
    return _conclude(
        storage,
        claimed,
        job,
        started,
        began,
        lambda: job.func(RunContext(started), *run.args, **run.kwargs),
    )


async def aexecute_run(
    storage: Storage,
    claimed: ClaimedRun,
    job: Job,
    *,
    database: Database,
    before_operation: Callable[[], None] | None = None,
    before_end: Callable[[], None] | None = None,
    atomic_leases: AtomicLeases | None = None,
) -> RunStatus | None:
    """``execute_run`` for an ``async def`` job, awaited on the running event loop: the
    job gets an ``AsyncRunContext``, and everything that touches the database (the start,
    each operation, the end) runs through ``database``, never on the loop."""
    if before_end is not None:
        storage = cast(Storage, _Ending(storage, before_end))
    with tracing.run_span(claimed.run) as span:
        began = time.monotonic()
        # Lines logged on the loop are never flushed from it (log_buffer_size None).
        started = await database(
            _start, storage, claimed, job, began, before_operation, atomic_leases, None
        )
        if isinstance(started, Journal):
            run = claimed.run
            outcome: Callable[[], Any]
            try:
                returned = await job.func(
                    AsyncRunContext(started, database), *run.args, **run.kwargs
                )
            except asyncio.CancelledError:
                raise  # the worker's loop is going away: the lease runs out, as for a kill
            except BaseException as error:
                outcome = functools.partial(_raise, error)
            else:
                outcome = functools.partial(_return, returned)
            started = await database(_conclude, storage, claimed, job, started, began, outcome)
        tracing.set_outcome(span, started, failed=started == RunStatus.FAILED)
        return started


def _raise(error: BaseException) -> Any:
    raise error


def _return(value: Any) -> Any:
    return value


def _start(
    storage: Storage,
    claimed: ClaimedRun,
    job: Job,
    began: float,
    before_operation: Callable[[], None] | None,
    atomic_leases: AtomicLeases | None,
    log_buffer_size: int | None,
) -> Journal | RunStatus | None:
    """The run's journal, ready for the job; or, when the job cannot be called, the
    status the run was left in."""
    run = claimed.run
    problem = _malformed_arguments(run)
    if problem is not None:
        # Not run: the job would be called with something no enqueue stored.
        error = MalformedRun(f"run {run.id} cannot be executed: its {problem}")
        result = _record_failure(storage, claimed, job, None, error, began)
        if result == RunStatus.FAILED:
            report_malformed(run.id, problem, "failed")
        return result
    try:
        entries = [] if claimed.fresh else storage.load_journal(run.id)
    except RunAbandoned as abandoned:
        return _abandon(storage, claimed, abandoned, Checkpoint())
    journal = Journal(
        storage,
        claimed,
        entries,
        log_buffer_size=log_buffer_size,
        before_operation=before_operation,
        atomic_leases=atomic_leases,
    )
    send_run_signal(signals.run_started, run.id, storage)
    return journal


def _conclude(
    storage: Storage,
    claimed: ClaimedRun,
    job: Job,
    journal: Journal,
    began: float,
    call: Callable[[], Any],
) -> RunStatus | None:
    """Call the job (``call()``: its return value, or its exception raised again) and
    record how the execution ended."""
    run = claimed.run
    try:
        returned = call()
        output = to_json(returned, "the output", owner=run.job_name)
    except RunAbandoned as abandoned:
        return _abandon(storage, claimed, abandoned, journal.take_pending())
    except WorkerStopping:
        return _release(storage, claimed, journal)
    except RunCancelled:
        ended = _end_outside_job(storage, claimed, journal, storage.finish_cancelled, "cancelled")
        if ended:
            send_run_signal(signals.run_cancelled, run.id, storage)
            return RunStatus.CANCELLED
        return None
    except Suspended as suspended:
        logger.info(
            "run=%s job=%s attempt=%s outcome=waiting reason=%s duration=%.3f",
            run.id,
            run.job_name,
            run.attempt,
            suspended,
            time.monotonic() - began,
        )
        return RunStatus.WAITING
    # SystemExit and KeyboardInterrupt here come from the job's own code (jobs run on slot
    # threads, where a worker's Ctrl-C never lands): they fail the run. Left to propagate,
    # they would end the slot thread and wedge the worker with a run it no longer executes.
    except (Exception, RunTimedOut, SystemExit, KeyboardInterrupt) as error:
        return _record_failure(storage, claimed, job, journal, error, began)
    pending = journal.take_pending()
    try:
        storage.complete(claimed.lease, output, pending)
    except RunAbandoned as abandoned:
        return _abandon(storage, claimed, abandoned, pending)
    journal.announce(pending)
    logger.info(
        "run=%s job=%s attempt=%s outcome=completed duration=%.3f",
        run.id,
        run.job_name,
        run.attempt,
        time.monotonic() - began,
    )
    send_run_signal(signals.run_completed, run.id, storage)
    return RunStatus.COMPLETED


def _record_failure(
    storage: Storage,
    claimed: ClaimedRun,
    job: Job,
    journal: Journal | None,
    error: BaseException,
    began: float,
) -> RunStatus | None:
    """Store the failure with the job's buffered writes (``journal`` is None when the job
    was never called); another attempt follows if the job's retry policy asks for one."""
    run = claimed.run
    retry_delay: float | None = None
    # Neither a changed job, a passed deadline nor a malformed row gets better on
    # another attempt.
    replay_safe = journal is not None and not (
        journal.nondeterministic or isinstance(error, (NonDeterminismError, RunTimedOut))
    )
    if replay_safe and job.retry is not None and job.retry.should_retry(run.attempt, error):
        retry_delay = job.retry.delay(run.attempt).total_seconds()
    history, problem = error_history(run.errors)
    errors = [*history, describe_error(error, run.attempt)]
    pending = Checkpoint() if journal is None else journal.take_pending()
    try:
        storage.fail(claimed.lease, errors=errors, checkpoint=pending, retry_delay=retry_delay)
    except RunAbandoned as abandoned:
        return _abandon(storage, claimed, abandoned, pending)
    if problem is not None:
        report_malformed(run.id, problem, "errors_replaced")
    if journal is not None:
        journal.announce(pending)
    outcome = "failed" if retry_delay is None else "retrying"
    logger.log(
        logging.ERROR if retry_delay is None else logging.WARNING,
        "run=%s job=%s attempt=%s outcome=%s duration=%.3f error=%s: %s%s",
        run.id,
        run.job_name,
        run.attempt,
        outcome,
        time.monotonic() - began,
        type(error).__name__,
        error,
        "" if retry_delay is None else f" retry_in={retry_delay:.3f}",
    )
    if retry_delay is None:
        send_run_signal(signals.run_failed, run.id, storage)
        return RunStatus.FAILED
    return RunStatus.WAITING if retry_delay > 0 else RunStatus.PENDING


def _malformed_arguments(run: RunRecord) -> str | None:
    """What is wrong with the run's stored arguments, if anything."""
    if not isinstance(run.args, list):
        return f"args are {describe_stored(run.args)}, not a list"
    if not isinstance(run.kwargs, dict):
        return f"kwargs are {describe_stored(run.kwargs)}, not an object"
    return None


def _log_abandoned(claimed: ClaimedRun, error: RunAbandoned) -> None:
    outcome = "lease_lost" if isinstance(error, LeaseLost) else "storage_error"
    logger.warning(
        "run=%s job=%s outcome=%s error=%s", claimed.run.id, claimed.run.job_name, outcome, error
    )


def _abandon(
    storage: Storage, claimed: ClaimedRun, error: RunAbandoned, pending: Checkpoint
) -> RunStatus | None:
    """Stop executing the run. When the database only gave up waiting for a lock, nothing
    was written and the lease is still ours: give the run back with what it had buffered
    (fenced), so another claim takes it at once, not after a stale-lease recovery. Any
    other storage error waits for the lease to expire, which counts a recovery, so a run
    whose writes always fail ends failed instead of looping."""
    _log_abandoned(claimed, error)
    if not isinstance(error, StorageBusy):
        return None
    try:
        storage.release(claimed.lease, pending)
    except RunAbandoned as failed:
        logger.warning(
            "run=%s job=%s event=release_failed error=%s",
            claimed.run.id,
            claimed.run.job_name,
            failed,
        )
        return None
    logger.info(
        "run=%s job=%s attempt=%s outcome=released reason=storage_busy",
        claimed.run.id,
        claimed.run.job_name,
        claimed.run.attempt,
    )
    return RunStatus.PENDING


def _release(storage: Storage, claimed: ClaimedRun, journal: Journal) -> RunStatus | None:
    released = _end_outside_job(
        storage, claimed, journal, storage.release, "released reason=worker_stopping"
    )
    return RunStatus.PENDING if released else None


def _end_outside_job(
    storage: Storage,
    claimed: ClaimedRun,
    journal: Journal,
    write: Callable[[Lease, Checkpoint], None],
    outcome: str,
) -> bool:
    """Write the run's buffered checkpoint with ``write`` (release, cancel); False if this
    worker had to abandon the run instead."""
    pending = journal.take_pending()
    try:
        write(claimed.lease, pending)
    except RunAbandoned as abandoned:
        _abandon(storage, claimed, abandoned, pending)
        return False
    journal.announce(pending)
    run = claimed.run
    logger.info("run=%s job=%s attempt=%s outcome=%s", run.id, run.job_name, run.attempt, outcome)
    return True
