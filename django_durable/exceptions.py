"""Exceptions raised to callers and inside jobs."""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Base class for django_durable errors."""


class JobNotRegistered(DurableError, LookupError):
    """No job of that name is registered in this process."""


class RunNotFound(DurableError, LookupError):
    """No run has that id."""


class InvalidRunId(DurableError, ValueError):
    """A run id that is not a UUID (``get_run``, ``send_event``, ``cancel_run`` ...).

    A ``ValueError`` too, as ``uuid.UUID`` would raise.
    """


class RunFinished(DurableError, ValueError):
    """The run has finished (completed, failed or cancelled), so it takes no more events.

    A ``ValueError`` too, so code written against earlier versions keeps working.
    """


class InvalidEventName(DurableError, ValueError):
    """An event name that is not a non-empty string of at most 255 characters.

    A ``ValueError`` too (also for a name that is not a string), so code written against
    earlier versions keeps working.
    """


class PayloadTooLarge(DurableError, ValueError):
    """A value to store (arguments, a step result, an output, an event payload) is larger
    as JSON than ``DURABLE["MAX_PAYLOAD_BYTES"]``. A ``ValueError`` too."""


class RunAbandoned(DurableError):
    """This worker must stop executing the run; its lease expires and it is recovered."""


class LeaseLost(RunAbandoned):
    """A fenced write found that this worker no longer owns the run; stop touching it."""


class StorageError(RunAbandoned):
    """The run's own journal or status could not be written (the database failed).

    Not the job's fault, so never a step or run failure: the worker gives the run up
    and another attempt at the same point follows once its lease expires.
    """


class AtomicStepTimeout(DurableError):
    """An ``atomic=True`` step held its transaction longer than
    ``DURABLE["ATOMIC_STEP_TIMEOUT"]``: its writes were rolled back.

    An ordinary step error (the step's ``retry`` policy applies). Atomic steps should be
    short: do long database work in a plain step with transactions of its own.
    """


class NonDeterminismError(DurableError):
    """The job asked for a different operation than the journal holds at that position."""


class StepFailed(DurableError):
    """A step failed for good; raised in the job both live and on replay."""

    def __init__(self, name: str, error_type: str, message: str) -> None:
        super().__init__(f"step {name!r} failed: {error_type}: {message}")
        self.name = name
        self.error_type = error_type
        self.message = message


class WorkerStopping(BaseException):
    """Raised at a step boundary when the worker shuts down; the run is released.

    A ``BaseException`` so that a job's own ``except Exception`` does not swallow it.
    """


class Suspended(BaseException):
    """Raised once a run has been parked as waiting; unwinds the job function.

    A ``BaseException`` so that a job's own ``except Exception`` does not swallow it.
    """


class EventTimeout(DurableError):
    """``ctx.wait_for_event`` waited longer than its timeout."""

    def __init__(self, name: str, deadline: str | None = None) -> None:
        super().__init__(f"no event {name!r} arrived before {deadline}")
        self.name = name
        self.deadline = deadline


class ChildRunFailed(DurableError):
    """Child runs awaited by ``ctx.wait_for_children`` did not complete."""

    def __init__(self, failures: list[dict[str, Any]]) -> None:
        described = ", ".join(
            f"{f['id']} ({f['status']}: {(f.get('error') or {}).get('message') or 'no error'})"
            for f in failures
        )
        super().__init__(f"{len(failures)} child run(s) did not complete: {described}")
        self.failures = failures


class ChildRunMissing(DurableError, LookupError):
    """A child run awaited by ``ctx.wait_for_children`` no longer exists (deleted by hand:
    pruning keeps the children of an unfinished parent)."""


class RunCancelled(BaseException):
    """Raised inside a job whose run was cancelled, at its next operation or at
    ``ctx.check_cancelled()``. A ``BaseException``: let it propagate."""


class RunTimedOut(BaseException):
    """The run's job has a ``timeout`` and the run's deadline passed; the run fails.

    A ``BaseException`` so that a job's own ``except Exception`` does not swallow it.
    """


class MalformedRun(DurableError):
    """A stored run that this version cannot execute or end as it is (written by hand, a
    migration or another version: arguments that are not a list and an object, say).

    The run fails once with this error, is never retried automatically, and the worker
    reports it in its log as ``event=malformed_row``.
    """
