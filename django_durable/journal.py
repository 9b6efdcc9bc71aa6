"""The engine's state for one run: journal positions, replay, the buffered checkpoint.

Every durable operation takes the next journal position. If the journal already holds
that position, the recorded outcome is returned (after checking kind and name);
otherwise the operation runs and its outcome is buffered as a checkpoint. A buffered
checkpoint is written before the next operation starts, or together with the run's
completion when it was the last one, so a one-step run costs one write transaction.

``context.py`` (what a job sees), ``steps.py`` and ``waiting.py`` (the operations) and
``runner.py`` (the run's end) use only the public methods here.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from django.utils import timezone

from . import signals
from .atomic import AtomicLeases
from .exceptions import NonDeterminismError, RunAbandoned, RunCancelled, WorkerStopping
from .payloads import check_name, storable_text
from .status import StepKind, StepStatus
from .storage.base import (
    Checkpoint,
    ClaimedRun,
    FencedTransaction,
    LogRecord,
    StepRecord,
    Storage,
)

logger = logging.getLogger("django_durable")

# Progress reported inside a step's function is written at once, at most this often
# (seconds), so an operator watches a long step move; the last value also rides with the
# step's checkpoint.
PROGRESS_INTERVAL = 1.0

# The ctx method behind each kind, for messages.
METHODS = {
    StepKind.STEP: "step",
    StepKind.SLEEP: "sleep",
    StepKind.EVENT: "wait_for_event",
    StepKind.CHILDREN: "start_children",
    StepKind.WAIT_CHILDREN: "wait_for_children",
    StepKind.PATCH: "patched",
}

# Where NonDeterminismError sends the reader.
UPGRADING = "docs/guides/upgrading.md"


def type_name(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def describe_error(error: BaseException, attempt: int) -> dict[str, Any]:
    """An exception as stored: qualified type, message and full traceback."""
    # Escaped where it cannot be stored (a NUL, a lone surrogate), so a run whose error
    # says something odd is still recorded as failed, with the cause readable.
    return {
        "attempt": attempt,
        "type": storable_text(type_name(error)),
        "message": storable_text(str(error)),
        "traceback": storable_text("".join(traceback.format_exception(error))),
    }


class Journal:
    """One claimed run's journal as the engine executes it.

    ``storage``, ``lease`` and ``run`` are what the run was claimed with;
    ``nondeterministic`` turns True when replay met an entry the job no longer asks for.
    """

    def __init__(
        self,
        storage: Storage,
        claimed: ClaimedRun,
        entries: list[StepRecord],
        *,
        log_buffer_size: int | None = 100,
        before_operation: Callable[[], None] | None = None,
        atomic_leases: AtomicLeases | None = None,
    ) -> None:
        self.storage = storage
        self.lease = claimed.lease
        self.run = claimed.run
        self.atomic_leases = atomic_leases
        self.nondeterministic = False
        self._entries = {entry.position: entry for entry in entries}
        self._last_position = max(self._entries, default=-1)
        self._position = 0
        self._pending = Checkpoint()
        # How many buffered logs precede the last buffered journal entry. A run released
        # at shutdown drops the logs after it: it re-makes them live when it resumes there.
        self._settled_logs = 0
        self._log_buffer_size = log_buffer_size
        self._before_operation = before_operation
        # The step whose function is running; buffered writes are not flushed meanwhile.
        self._in_step: str | None = None
        # Whether progress reported now may be written at once (inside a plain step's
        # function), and when it may be next (time.monotonic()).
        self._progress_live = False
        self._progress_due = 0.0

    # -- positions and replay ------------------------------------------------------------

    def begin(self, kind: StepKind, name: str) -> tuple[int, StepRecord | None]:
        """Take the next journal position; return it with its journaled outcome, if any."""
        self._check_operation(METHODS[kind], name)
        position = self._position
        self._position += 1
        return position, self._replay(position, kind, name)

    def _check_operation(self, method: str, name: str) -> None:
        if self._in_step is not None:
            raise RuntimeError(
                f"ctx.{method}({name!r}) was called inside the function of step "
                f"{self._in_step!r}; durable operations belong in the job function itself"
            )
        check_name(name, f"the name of ctx.{method}()", column="Step.name")

    def patched(self, name: str) -> bool:
        """Whether this execution takes the code path of patch ``name`` (``ctx.patched``).

        Live, it journals a marker at the next position and says yes. On replay, a marker
        of this patch there means the run took the new path (yes, and the position is
        used); anything else was journaled before the patch existed (no, and the position
        is left to the operation the old code ran there)."""
        self._check_operation("patched", name)
        recorded = self._replayed(self._position)
        if recorded is not None:
            if recorded.kind != StepKind.PATCH or recorded.name != name:
                return False
            self._position += 1
            return True
        position, _ = self.begin(StepKind.PATCH, name)
        marker = self.entry(
            position=position,
            name=name,
            status=StepStatus.COMPLETED,
            started=timezone.now(),
            kind=StepKind.PATCH,
        )
        self.buffer(marker)
        return True

    def deprecate_patch(self, name: str) -> None:
        """The code always takes patch ``name``'s path now (``ctx.deprecate_patch``): a
        marker of it at the next position is passed over; nothing is journaled."""
        self._check_operation("deprecate_patch", name)
        recorded = self._replayed(self._position)
        if recorded is not None and recorded.kind == StepKind.PATCH and recorded.name == name:
            self._position += 1

    @property
    def replaying(self) -> bool:
        """True until the job reaches the first operation that executes live: the next
        journal position is one the journal holds (what ran before it was stored)."""
        return self._position in self._entries

    def _replay(self, position: int, kind: StepKind, name: str) -> StepRecord | None:
        """The journaled outcome at ``position``, or None when the operation must run."""
        recorded = self._replayed(position)
        if recorded is not None and (recorded.kind != kind or recorded.name != name):
            self.nondeterministic = True
            raise NonDeterminismError(
                f"run {self.run.id} of {self.run.job_name}: journal position {position} holds "
                f"{recorded.kind} {recorded.name!r} but the job now asks for {kind} {name!r}, "
                "so the job's code changed in a way that is not replay-safe. Put new code "
                "behind `if ctx.patched(...)` so that runs journaled before it keep the old "
                f"path, or fork this run with fork_run() from an earlier step (see {UPGRADING})"
            )
        return recorded

    def _replayed(self, position: int) -> StepRecord | None:
        """The entry at ``position`` that replay returns, or None where the job runs live."""
        recorded = self._entries.get(position)
        # A failed last entry written by an earlier attempt is where the new attempt resumes.
        if recorded is not None and (
            recorded.status == StepStatus.FAILED
            and position == self._last_position
            and recorded.run_attempt < self.run.attempt
        ):
            return None
        return recorded

    def guard(self) -> None:
        """Before an operation executes live: the worker may stop here, or have lost the
        lease (``before_operation`` raises)."""
        if self._before_operation is None:
            return
        try:
            self._before_operation()
        except WorkerStopping:
            # The run is released with its buffered entries and resumes here; the logs
            # made since the last entry are made (and stored) again then.
            del self._pending.logs[self._settled_logs :]
            raise

    def in_step(self, name: str | None, *, live_progress: bool = False) -> None:
        """The function of step ``name`` runs now (None: it returned). Durable operations
        are refused meanwhile, and progress is written at once when ``live_progress``."""
        self._in_step = name
        self._progress_live = live_progress and name is not None

    # -- entries and the buffered checkpoint ------------------------------------------

    def entry(
        self,
        *,
        position: int,
        name: str,
        status: StepStatus,
        started: datetime | None,
        result: Any = None,
        error: dict[str, Any] | None = None,
        attempts: int = 1,
        kind: StepKind = StepKind.STEP,
    ) -> StepRecord:
        """A journal entry made by this execution, finished now."""
        return StepRecord(
            position=position,
            kind=kind,
            name=name,
            status=status,
            result=result,
            error=error,
            attempts=attempts,
            run_attempt=self.run.attempt,
            started_at=started,
            finished_at=timezone.now(),
        )

    def buffer(self, entry: StepRecord) -> None:
        """Keep ``entry`` to be written with the next checkpoint."""
        self._pending.add(entry, replacing=entry.position in self._entries)
        self._settled_logs = len(self._pending.logs)

    def buffered(self) -> Checkpoint:
        """A copy of the buffered writes; they stay buffered until ``written()``."""
        return self._pending.copy()

    def with_entry(self, entry: StepRecord) -> Checkpoint:
        """The buffered writes plus ``entry``; they stay buffered until ``written()``."""
        batch = self._pending.copy()
        batch.add(entry, replacing=entry.position in self._entries)
        return batch

    def written(self, batch: Checkpoint) -> None:
        """The buffered writes are committed (as ``batch``, with a journal entry)."""
        self._pending = Checkpoint()
        self._settled_logs = 0
        self.announce(batch)

    def flush(self) -> None:
        """Write buffered checkpoints, logs and progress now (fenced)."""
        if not self._pending:
            return
        self.guard()
        pending = self._pending
        self.storage.checkpoint(self.lease, pending)  # on failure, the writes stay buffered
        self.written(pending)

    def flush_before(self, method: str, name: str) -> None:
        """``flush()`` ahead of the operation ``ctx.<method>(name)``, checked first as
        ``begin()`` checks it (an async step flushes from a database thread)."""
        self._check_operation(method, name)
        self.flush()

    def take_pending(self) -> Checkpoint:
        """Hand the buffered writes to the runner, which merges them with the run's end."""
        pending, self._pending = self._pending, Checkpoint()
        self._settled_logs = 0
        return pending

    def announce(self, written: Checkpoint) -> None:
        """Send step signals for journal entries that were just committed."""
        signals.send_step_signals(self.run.id, written.steps)

    # -- writes that leave the buffer --------------------------------------------------

    def suspend(self, batch: Checkpoint, *, wake_at: datetime | None) -> None:
        """Park the run until ``wake_at`` (or until woken), writing ``batch`` with it."""
        self.storage.suspend(self.lease, batch, wake_at=wake_at)
        self.written(batch)

    def fenced_transaction(self) -> AbstractContextManager[FencedTransaction]:
        """A transaction that writes only while this worker holds the run's lease."""
        return self.storage.fenced_transaction(self.lease)

    def now(self) -> datetime:
        """The database clock."""
        return self.storage.now()

    # -- logs and progress ---------------------------------------------------------------

    def buffer_log(self, level: int, message: str) -> None:
        self._pending.logs.append(
            LogRecord(
                attempt=self.run.attempt, level=level, message=message, created_at=timezone.now()
            )
        )
        # None (an async job's journal, logged to on the event loop): the lines wait for
        # the next awaited operation, which writes them from a database thread.
        size = self._log_buffer_size
        if size is not None and len(self._pending.logs) >= size and self._in_step is None:
            self.flush()

    def store_log_now(self, level: int, message: str) -> None:
        """Store ``message`` in the run's log at once (fenced), replaying or not: for facts
        about this execution itself, such as which worker ran it, which a crash must not
        lose and a replay must not suppress. Not sent to Python logging."""
        self.buffer_log(level, message)
        self.flush()

    def progress(self, progress: dict[str, Any]) -> None:
        """Keep ``progress`` for the next checkpoint; inside a plain step's function,
        also write it at once, at most every ``PROGRESS_INTERVAL`` seconds."""
        self._pending.progress = progress
        if not self._progress_live or time.monotonic() < self._progress_due:
            return
        self._progress_due = time.monotonic() + PROGRESS_INTERVAL
        try:
            self.storage.checkpoint(self.lease, Checkpoint(progress=progress))
        except (RunAbandoned, RunCancelled) as error:
            # Never the step's failure: the next operation meets the lost lease, the
            # failing database or the cancel request, as it would have without this.
            logger.debug("event=progress_not_written run_id=%s error=%r", self.run.id, error)
