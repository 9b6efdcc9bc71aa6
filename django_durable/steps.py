"""``ctx.step()``: run a function once per run, with retries, and journal its outcome."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.utils import timezone

from . import tracing, waiting
from .atomic import run_atomic_step
from .conf import durable_settings
from .exceptions import RunAbandoned, StepFailed
from .journal import Journal, describe_error, type_name
from .payloads import to_json
from .retry import RetryPolicy
from .status import StepKind, StepStatus
from .storage.base import Checkpoint, StepRecord

T = TypeVar("T")


def run_step(
    journal: Journal,
    name: str,
    fn: Callable[[], T],
    *,
    retry: RetryPolicy | None,
    atomic: bool,
    log_retry: Callable[..., None],
) -> T:
    """What ``ctx.step(name, fn, retry=..., atomic=...)`` does; ``log_retry`` is the
    run's logger's ``warning``, for each attempt that will be retried."""
    position, recorded = journal.begin(StepKind.STEP, name)
    attempts = 0
    if recorded is not None:
        if recorded.status == StepStatus.COMPLETED:
            return recorded.result  # type: ignore[no-any-return]
        if recorded.status == StepStatus.WAITING:  # a retry the run slept for
            attempts = recorded.attempts
        else:
            error = recorded.error or {}
            raise StepFailed(name, error.get("type", ""), error.get("message", ""))
    journal.guard()
    started = recorded.started_at if recorded and recorded.started_at else timezone.now()

    def call_fn() -> Any:
        # Right before the body, each attempt (inside an atomic step's transaction,
        # after its fence): no body starts on a worker that cannot vouch for its lease.
        journal.guard()
        # Not inside an atomic step's transaction: nothing in it is visible before
        # its COMMIT, and a rollback would take the progress with it.
        journal.in_step(name, live_progress=not atomic)
        try:
            with tracing.step_span(journal.run.job_name, name, position, attempts):
                result = fn()
            return _json_result(name, result)
        finally:
            journal.in_step(None)

    def record(result: Any, attempts: int) -> StepRecord:
        return journal.entry(
            position=position,
            name=name,
            status=StepStatus.COMPLETED,
            result=result,
            attempts=attempts,
            started=started,
        )

    def run_plain(attempts: int) -> Any:
        result = call_fn()
        journal.buffer(record(result, attempts))
        return result

    def run_atomic(attempts: int) -> Any:
        # Writes buffered earlier (and logs/progress from fn) ride in the same
        # transaction; if it rolls back they stay buffered.
        def batch_for(result: Any) -> Checkpoint:
            return journal.with_entry(record(result, attempts))

        result, batch = run_atomic_step(
            journal.storage, journal.lease, journal.atomic_leases, name, call_fn, batch_for
        )
        journal.written(batch)
        return result

    def buffer_failure(error: BaseException) -> None:
        journal.buffer(
            journal.entry(
                position=position,
                name=name,
                status=StepStatus.FAILED,
                error=describe_error(error, journal.run.attempt),
                attempts=attempts,
                started=started,
            )
        )

    if not atomic:
        journal.flush()
    call = run_atomic if atomic else run_plain
    while True:
        attempts += 1
        try:
            return call(attempts)  # type: ignore[no-any-return]
        except RunAbandoned:
            raise
        except _BadResult as bad:
            buffer_failure(bad.error)
            raise bad.error from None
        except Exception as error:
            if retry is not None and retry.should_retry(attempts, error):
                delay = retry.delay(attempts).total_seconds()
                log_retry(
                    "step %r attempt %d failed (%s: %s); retrying in %.3fs",
                    name,
                    attempts,
                    type_name(error),
                    error,
                    delay,
                )
                if delay > durable_settings.STEP_RETRY_SLEEP_LIMIT:
                    # A long backoff is a durable timer: the run gives up its worker.
                    waiting.park_step_retry(
                        journal, position, name, attempts, started, error, delay
                    )
                time.sleep(delay)
                # The worker may have been frozen, or lost the lease, while it slept.
                journal.guard()
                continue
            buffer_failure(error)
            raise StepFailed(name, type_name(error), str(error)) from error


def _json_result(name: str, value: Any) -> Any:
    try:
        return to_json(value, "the result", owner=f"step {name!r}")
    except (TypeError, ValueError) as error:
        raise _BadResult(error) from error


class _BadResult(Exception):
    """A step returned something JSON cannot hold: a bug in the job, never retried."""

    def __init__(self, error: TypeError | ValueError) -> None:
        super().__init__(str(error))
        self.error = error
