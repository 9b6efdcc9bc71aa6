"""The run context ``ctx``: journal replay and checkpointed steps.

Every durable operation takes the next journal position. If the journal already holds
that position, the recorded outcome is returned (after checking kind and name);
otherwise the operation runs and its outcome is buffered as a checkpoint. A buffered
checkpoint is written before the next operation starts, or together with the run's
completion when it was the last one, so a one-step run costs one write transaction.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.utils import timezone

from . import signals, tracing, waiting
from .atomic import AtomicLeases, run_atomic_step
from .conf import durable_settings
from .exceptions import (
    NonDeterminismError,
    RunAbandoned,
    RunCancelled,
    StepFailed,
    WorkerStopping,
)
from .payloads import check_name, storable_text, to_json
from .retry import RetryPolicy
from .status import StepKind, StepStatus
from .storage.base import Checkpoint, ClaimedRun, LogRecord, StepRecord, Storage

if TYPE_CHECKING:
    from .jobs import Job

logger = logging.getLogger("django_durable")

T = TypeVar("T")

# Progress reported inside a step's function is written at once, at most this often
# (seconds), so an operator watches a long step move; the last value also rides with the
# step's checkpoint.
PROGRESS_INTERVAL = 1.0


def describe_error(error: BaseException, attempt: int) -> dict[str, Any]:
    """An exception as stored: qualified type, message and full traceback."""
    # Escaped where it cannot be stored (a NUL, a lone surrogate), so a run whose error
    # says something odd is still recorded as failed, with the cause readable.
    return {
        "attempt": attempt,
        "type": storable_text(_type_name(error)),
        "message": storable_text(str(error)),
        "traceback": storable_text("".join(traceback.format_exception(error))),
    }


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: passes records to stdlib logging and keeps them with the run.

    Records made while the job replays journaled operations (after a sleep, an event or
    a recovery) were stored by the execution that first made them: they go to Python
    logging only, with ``record.replayed`` True, so the stored log reads as one execution.
    One window remains: lines made after a step are written when the next operation
    starts; if the worker dies during that next step, the recovered run makes and stores
    them again.
    """

    def __init__(self, ctx: RunContext, name: str) -> None:
        super().__init__(logging.getLogger(name), {"run_id": str(ctx.run_id)})
        self._ctx = ctx

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        # Keep the caller's own ``extra`` next to ours (LoggerAdapter would replace it).
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Log through Python logging and, unless replaying, buffer the record to be
        stored with the run."""
        replayed = self._ctx._replaying
        if not replayed:
            message = str(msg) % args if args else str(msg)
            exc_info = kwargs.get("exc_info")
            if exc_info:  # ctx.log.exception(): keep the traceback with the run too
                if isinstance(exc_info, BaseException):
                    exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
                elif not isinstance(exc_info, tuple):
                    exc_info = sys.exc_info()
                if exc_info[0] is not None:
                    message += "\n" + "".join(traceback.format_exception(*exc_info)).rstrip()
            # A line that cannot be stored as it is (a NUL, a lone surrogate) is stored
            # escaped: logging never fails the run, and the line keeps what it said.
            self._ctx._buffer_log(level, storable_text(message))
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "replayed": replayed}
        super().log(level, msg, *args, **kwargs)


class RunContext:
    """Passed to every job as its first argument."""

    def __init__(
        self,
        storage: Storage,
        claimed: ClaimedRun,
        journal: list[StepRecord],
        *,
        log_buffer_size: int = 100,
        before_operation: Callable[[], None] | None = None,
        atomic_leases: AtomicLeases | None = None,
    ) -> None:
        self._storage = storage
        self._lease = claimed.lease
        self._run = claimed.run
        self._journal = {step.position: step for step in journal}
        self._last_position = max(self._journal, default=-1)
        self._position = 0
        self._pending = Checkpoint()
        # How many buffered logs precede the last buffered journal entry. A run released
        # at shutdown drops the logs after it: it re-makes them live when it resumes there.
        self._settled_logs = 0
        self._log_buffer_size = log_buffer_size
        self.nondeterministic = False
        # The step whose function is running; buffered writes are not flushed meanwhile.
        self._in_step: str | None = None
        # Whether progress reported now may be written at once (inside a plain step's
        # function), and when it may be next (time.monotonic()).
        self._progress_live = False
        self._progress_due = 0.0
        self._before_operation = before_operation
        self._atomic_leases = atomic_leases
        self.log = RunLogger(self, f"django_durable.job.{claimed.run.job_name}")
        """A logger whose records also go to the run's log in the database, except those
        made while the job replays journaled operations (stored when first made)."""

    # -- what a job may read -----------------------------------------------------------

    @property
    def run_id(self) -> uuid.UUID:
        """The id of the run being executed."""
        return self._run.id

    @property
    def attempt(self) -> int:
        """The run-level attempt, from 1 (recoveries after a crash do not count)."""
        return self._run.attempt

    @property
    def job_name(self) -> str:
        """The registered name of the job being executed."""
        return self._run.job_name

    @property
    def scheduled_at(self) -> datetime | None:
        """The schedule tick that started this run (aware); None if no schedule did."""
        return self._run.scheduled_at

    @property
    def worker_id(self) -> str:
        """The id of the worker executing this attempt (the owner of its lease)."""
        return self._lease.owner

    # -- durable operations ------------------------------------------------------------

    def step(
        self,
        name: str,
        fn: Callable[[], T],
        *,
        retry: RetryPolicy | None = None,
        atomic: bool = False,
    ) -> T:
        """Run ``fn()`` once for this run and return its JSON-normalised result.

        A step whose checkpoint is committed never runs again; on replay its recorded
        result (or ``StepFailed``) is returned. ``atomic=True`` runs ``fn`` inside the
        transaction that writes its checkpoint, so its database writes happen exactly once.
        A step that still fails after ``retry`` is journaled as failed and raises
        ``StepFailed`` with the original exception as ``__cause__``.
        """
        position, recorded = self._begin(StepKind.STEP, name)
        attempts = 0
        if recorded is not None:
            if recorded.status == StepStatus.COMPLETED:
                return recorded.result  # type: ignore[no-any-return]
            if recorded.status == StepStatus.WAITING:  # a retry the run slept for
                attempts = recorded.attempts
            else:
                error = recorded.error or {}
                raise StepFailed(name, error.get("type", ""), error.get("message", ""))
        replacing = position in self._journal
        self._guard()
        started = recorded.started_at if recorded and recorded.started_at else timezone.now()

        def call_fn() -> Any:
            # Right before the body, each attempt (inside an atomic step's transaction,
            # after its fence): no body starts on a worker that cannot vouch for its lease.
            self._guard()
            self._in_step = name
            # Not inside an atomic step's transaction: nothing in it is visible before
            # its COMMIT, and a rollback would take the progress with it.
            self._progress_live = not atomic
            try:
                with tracing.step_span(self.job_name, name, position, attempts):
                    result = fn()
                return self._json_result(name, result)
            finally:
                self._in_step = None
                self._progress_live = False

        def record(result: Any, attempts: int) -> StepRecord:
            return self._entry(
                position, name, StepStatus.COMPLETED, result, None, attempts, started
            )

        def run_plain(attempts: int) -> Any:
            result = call_fn()
            self._buffer(record(result, attempts), replacing)
            return result

        def batch_for(result: Any, attempts: int) -> Checkpoint:
            # Writes buffered earlier (and logs/progress from fn) ride in the same
            # transaction; if it rolls back they stay buffered.
            batch = self._pending.copy()
            batch.add(record(result, attempts), replacing)
            return batch

        def run_atomic(attempts: int) -> Any:
            result, batch = run_atomic_step(
                self._storage,
                self._lease,
                self._atomic_leases,
                name,
                call_fn,
                lambda result: batch_for(result, attempts),
            )
            self._written(batch)
            return result

        if not atomic:
            self.flush()
        call = run_atomic if atomic else run_plain
        while True:
            attempts += 1
            try:
                return call(attempts)  # type: ignore[no-any-return]
            except RunAbandoned:
                raise
            except _BadResult as bad:
                self._buffer_failure(position, name, bad.error, attempts, started, replacing)
                raise bad.error from None
            except Exception as error:
                if retry is not None and retry.should_retry(attempts, error):
                    delay = retry.delay(attempts).total_seconds()
                    self.log.warning(
                        "step %r attempt %d failed (%s: %s); retrying in %.3fs",
                        name,
                        attempts,
                        _type_name(error),
                        error,
                        delay,
                    )
                    if delay > durable_settings.STEP_RETRY_SLEEP_LIMIT:
                        # A long backoff is a durable timer: the run gives up its worker.
                        waiting.park_step_retry(
                            self, position, name, attempts, started, error, delay
                        )
                    time.sleep(delay)
                    # The worker may have been frozen, or lost the lease, while it slept.
                    self._guard()
                    continue
                self._buffer_failure(position, name, error, attempts, started, replacing)
                raise StepFailed(name, _type_name(error), str(error)) from error

    def sleep(self, name: str, delay: timedelta | float) -> None:
        """Pause the run for ``delay`` (a timedelta or seconds) without holding a worker.

        The wake time is computed once from the database clock and journaled.
        """
        waiting.sleep(self, name, delay)

    def sleep_until(self, name: str, when: datetime) -> None:
        """Pause the run until ``when`` (timezone-aware) without holding a worker."""
        waiting.sleep_until(self, name, when)

    def wait_for_event(self, name: str, timeout: timedelta | float | None = None) -> Any:
        """The payload of the oldest unconsumed event ``name`` sent with ``send_event``,
        waiting without a worker until one arrives; ``EventTimeout`` after ``timeout``."""
        return waiting.wait_for_event(self, name, timeout)

    def start_child(self, job: Job, *args: Any, **kwargs: Any) -> waiting.ChildHandle:
        """Start a child run of ``job``: created exactly once, however often this replays."""
        return waiting.start_child(self, job, *args, **kwargs)

    def start_children(
        self, job: Job, kwargs_list: Sequence[Mapping[str, Any]]
    ) -> list[waiting.ChildHandle]:
        """Start one child run of ``job`` per mapping of keyword arguments, together."""
        return waiting.start_children(self, job, kwargs_list)

    def wait_for_children(self, handles: Sequence[waiting.ChildHandle]) -> list[Any]:
        """Wait without a worker until every child finished; return their outputs in order,
        or raise ``ChildRunFailed`` naming the children that did not complete."""
        return waiting.wait_for_children(self, handles)

    def check_cancelled(self) -> None:
        """Raise ``RunCancelled`` now if someone cancelled this run (a long step can call
        it between chunks of work; operations also check at their start)."""
        record = self._storage.get_run(self.run_id)
        if record is not None and record.cancel_requested:
            raise RunCancelled

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Record how far the run is. Inside a step's function it is written at once,
        at most once a second (the last value is stored with the step's checkpoint in
        any case); elsewhere, and in atomic steps, with the next checkpoint."""
        self._pending.progress = to_json(
            {"done": done, "total": total, "message": str(message)}, "progress"
        )
        if self._progress_live and time.monotonic() >= self._progress_due:
            self._write_progress(self._pending.progress)

    def _write_progress(self, progress: dict[str, Any]) -> None:
        """Write progress alone, fenced, while the step runs; it stays buffered too."""
        self._progress_due = time.monotonic() + PROGRESS_INTERVAL
        try:
            self._storage.checkpoint(self._lease, Checkpoint(progress=progress))
        except (RunAbandoned, RunCancelled) as error:
            # Never the step's failure: the next operation meets the lost lease, the
            # failing database or the cancel request, as it would have without this.
            logger.debug("event=progress_not_written run_id=%s error=%r", self.run_id, error)

    # -- journal bookkeeping -------------------------------------------------------------

    def _begin(self, kind: StepKind, name: str) -> tuple[int, StepRecord | None]:
        """Take the next journal position; return it with its journaled outcome, if any."""
        if self._in_step is not None:
            raise RuntimeError(
                f"ctx.{_METHODS[kind]}({name!r}) was called inside the function of step "
                f"{self._in_step!r}; durable operations belong in the job function itself"
            )
        check_name(name, f"the name of ctx.{_METHODS[kind]}()", column="Step.name")
        position = self._position
        self._position += 1
        return position, self._replay(position, kind, name)

    def _guard(self) -> None:
        if self._before_operation is None:
            return
        try:
            self._before_operation()  # the worker may stop here or have lost the lease
        except WorkerStopping:
            # The run is released with its buffered entries and resumes here; the logs
            # made since the last entry are made (and stored) again then.
            del self._pending.logs[self._settled_logs :]
            raise

    @property
    def _replaying(self) -> bool:
        """True until the job reaches the first operation that executes live: the next
        journal position is one the journal holds (what ran before it was stored)."""
        return self._position in self._journal

    def _replay(self, position: int, kind: StepKind, name: str) -> StepRecord | None:
        """The journaled outcome at ``position``, or None when the operation must run."""
        recorded = self._journal.get(position)
        if recorded is None:
            return None
        if recorded.kind != kind or recorded.name != name:
            self.nondeterministic = True
            raise NonDeterminismError(
                f"run {self.run_id} of {self.job_name}: journal position {position} holds "
                f"{recorded.kind} {recorded.name!r} but the job now asks for {kind} {name!r}; "
                "job code changed in a way that is not replay-safe"
            )
        # A failed last entry written by an earlier attempt is where the new attempt resumes.
        if (
            recorded.status == StepStatus.FAILED
            and position == self._last_position
            and recorded.run_attempt < self.attempt
        ):
            return None
        return recorded

    def _entry(
        self,
        position: int,
        name: str,
        status: StepStatus,
        result: Any,
        error: dict[str, Any] | None,
        attempts: int,
        started: Any,
        kind: StepKind = StepKind.STEP,
    ) -> StepRecord:
        return StepRecord(
            position=position,
            kind=kind,
            name=name,
            status=status,
            result=result,
            error=error,
            attempts=attempts,
            run_attempt=self.attempt,
            started_at=started,
            finished_at=timezone.now(),
        )

    def _buffer(self, entry: StepRecord, replacing: bool) -> None:
        self._pending.add(entry, replacing)
        self._settled_logs = len(self._pending.logs)

    def _written(self, batch: Checkpoint) -> None:
        """The buffered writes are committed (as ``batch``, with a journal entry)."""
        self._pending = Checkpoint()
        self._settled_logs = 0
        self.announce(batch)

    def _buffer_failure(
        self,
        position: int,
        name: str,
        error: BaseException,
        attempts: int,
        started: Any,
        replacing: bool,
    ) -> None:
        described = describe_error(error, self.attempt)
        entry = self._entry(position, name, StepStatus.FAILED, None, described, attempts, started)
        self._buffer(entry, replacing)

    @staticmethod
    def _json_result(name: str, value: Any) -> Any:
        try:
            return to_json(value, "the result", owner=f"step {name!r}")
        except (TypeError, ValueError) as error:
            raise _BadResult(error) from error

    def _buffer_log(self, level: int, message: str) -> None:
        self._pending.logs.append(
            LogRecord(attempt=self.attempt, level=level, message=message, created_at=timezone.now())
        )
        if len(self._pending.logs) >= self._log_buffer_size and self._in_step is None:
            self.flush()

    def store_log_now(self, level: int, message: str) -> None:
        """Store ``message`` in the run's log at once (fenced), replaying or not: for facts
        about this execution itself, such as which worker ran it, which a crash must not
        lose and a replay must not suppress. Not sent to Python logging."""
        self._buffer_log(level, message)
        self.flush()

    def flush(self) -> None:
        """Write buffered checkpoints, logs and progress now (fenced)."""
        if not self._pending:
            return
        self._guard()
        pending = self._pending
        self._storage.checkpoint(self._lease, pending)  # on failure, the writes stay buffered
        self._pending = Checkpoint()
        self._settled_logs = 0
        self.announce(pending)

    def take_pending(self) -> Checkpoint:
        """Hand the buffered writes to the runner, which merges them with the run's end."""
        pending, self._pending = self._pending, Checkpoint()
        self._settled_logs = 0
        return pending

    def announce(self, written: Checkpoint) -> None:
        """Send step signals for journal entries that were just committed."""
        for step in written.steps:
            if step.status == StepStatus.WAITING:
                continue  # not an outcome yet
            signal = (
                signals.step_completed
                if step.status == StepStatus.COMPLETED
                else signals.step_failed
            )
            if signal.has_listeners():
                signal.send_robust(sender=RunContext, run=self.run_id, step=step)


_METHODS = {
    StepKind.STEP: "step",
    StepKind.SLEEP: "sleep",
    StepKind.EVENT: "wait_for_event",
    StepKind.CHILDREN: "start_children",
    StepKind.WAIT_CHILDREN: "wait_for_children",
}


def _type_name(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


class _BadResult(Exception):
    """A step returned something JSON cannot hold: a bug in the job, never retried."""

    def __init__(self, error: TypeError | ValueError) -> None:
        super().__init__(str(error))
        self.error = error
