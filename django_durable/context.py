"""The run context ``ctx``: the thin object a job receives as its first argument.

Each method is one durable operation (``steps.py``, ``waiting.py``) on the run's
``Journal`` (``journal.py``), which holds the engine's state; nothing of the engine is
public here.
"""

from __future__ import annotations

import logging
import sys
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from . import waiting
from .exceptions import RunCancelled
from .journal import Journal
from .payloads import storable_text, to_json
from .retry import RetryPolicy
from .steps import run_step

if TYPE_CHECKING:
    from .jobs import Job

T = TypeVar("T")


class RunLogger(logging.LoggerAdapter[logging.Logger]):
    """``ctx.log``: passes records to stdlib logging and keeps them with the run.

    Records made while the job replays journaled operations (after a sleep, an event or
    a recovery) were stored by the execution that first made them: they go to Python
    logging only, with ``record.replayed`` True, so the stored log reads as one execution.
    One window remains: lines made after a step are written when the next operation
    starts; if the worker dies during that next step, the recovered run makes and stores
    them again.
    """

    def __init__(self, journal: Journal) -> None:
        name = f"django_durable.job.{journal.run.job_name}"
        super().__init__(logging.getLogger(name), {"run_id": str(journal.run.id)})
        self._journal = journal

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        # Keep the caller's own ``extra`` next to ours (LoggerAdapter would replace it).
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        """Log through Python logging and, unless replaying, buffer the record to be
        stored with the run."""
        replayed = self._journal.replaying
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
            self._journal.buffer_log(level, storable_text(message))
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "replayed": replayed}
        super().log(level, msg, *args, **kwargs)


class RunFacts:
    """What a job may read about its run, and ``log``: shared by ``RunContext`` and the
    ``AsyncRunContext`` of ``async def`` jobs."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self.log = RunLogger(journal)
        """A logger whose records also go to the run's log in the database, except those
        made while the job replays journaled operations (stored when first made)."""

    # -- what a job may read -----------------------------------------------------------

    @property
    def run_id(self) -> uuid.UUID:
        """The id of the run being executed."""
        return self._journal.run.id

    @property
    def attempt(self) -> int:
        """The run-level attempt, from 1 (recoveries after a crash do not count)."""
        return self._journal.run.attempt

    @property
    def job_name(self) -> str:
        """The registered name of the job being executed."""
        return self._journal.run.job_name

    @property
    def scheduled_at(self) -> datetime | None:
        """The schedule tick that started this run (aware); None if no schedule did."""
        return self._journal.run.scheduled_at

    @property
    def worker_id(self) -> str:
        """The id of the worker executing this attempt (the owner of its lease)."""
        return self._journal.lease.owner


class RunContext(RunFacts):
    """Passed to every job as its first argument."""

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
        return run_step(
            self._journal, name, fn, retry=retry, atomic=atomic, log_retry=self.log.warning
        )

    def sleep(self, name: str, delay: timedelta | float) -> None:
        """Pause the run for ``delay`` (a timedelta or seconds) without holding a worker.

        The wake time is computed once from the database clock and journaled.
        """
        waiting.sleep(self._journal, name, delay)

    def sleep_until(self, name: str, when: datetime) -> None:
        """Pause the run until ``when`` (timezone-aware) without holding a worker."""
        waiting.sleep_until(self._journal, name, when)

    def wait_for_event(self, name: str, timeout: timedelta | float | None = None) -> Any:
        """The payload of the oldest unconsumed event ``name`` sent with ``send_event``,
        waiting without a worker until one arrives; ``EventTimeout`` after ``timeout``."""
        return waiting.wait_for_event(self._journal, name, timeout)

    def start_child(self, job: Job, *args: Any, **kwargs: Any) -> waiting.ChildHandle:
        """Start a child run of ``job``: created exactly once, however often this replays."""
        return waiting.start_child(self._journal, job, *args, **kwargs)

    def start_children(
        self, job: Job, kwargs_list: Sequence[Mapping[str, Any]]
    ) -> list[waiting.ChildHandle]:
        """Start one child run of ``job`` per mapping of keyword arguments, together."""
        return waiting.start_children(self._journal, job, kwargs_list)

    def wait_for_children(self, handles: Sequence[waiting.ChildHandle]) -> list[Any]:
        """Wait without a worker until every child finished; return their outputs in order,
        or raise ``ChildRunFailed`` naming the children that did not complete."""
        return waiting.wait_for_children(self._journal, handles)

    def patched(self, name: str) -> bool:
        """True where this run takes the new code of patch ``name``: every execution that
        reaches this point live does (and journals a marker); a run journaled here before
        the patch existed replays as False and keeps the old path. See the upgrading
        guide."""
        return self._journal.patched(name)

    def deprecate_patch(self, name: str) -> None:
        """Say that the code now always takes patch ``name``'s new path: runs journaled
        with its marker still replay, new runs journal nothing. Remove the call once no
        run with the marker remains unfinished."""
        self._journal.deprecate_patch(name)

    def check_cancelled(self) -> None:
        """Raise ``RunCancelled`` now if someone cancelled this run (a long step can call
        it between chunks of work; operations also check at their start)."""
        record = self._journal.storage.get_run(self.run_id)
        if record is not None and record.cancel_requested:
            raise RunCancelled

    def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """Record how far the run is. Inside a step's function it is written at once,
        at most once a second (the last value is stored with the step's checkpoint in
        any case); elsewhere, and in atomic steps, with the next checkpoint."""
        self._journal.progress(
            to_json({"done": done, "total": total, "message": str(message)}, "progress")
        )


def journal_of(ctx: RunFacts) -> Journal:
    """The engine's journal behind ``ctx``, for the library's own job wrappers (the
    ``django.tasks`` backend stores a log line at once through it)."""
    return ctx._journal
