"""Durable execution for Django: jobs of checkpointed steps, journaled in your database."""

from .exceptions import (
    AtomicStepTimeout,
    ChildRunFailed,
    ChildRunMissing,
    DurableError,
    EventTimeout,
    InvalidEventName,
    InvalidRunId,
    JobNotRegistered,
    LeaseLost,
    MalformedRun,
    NonDeterminismError,
    PayloadTooLarge,
    RunCancelled,
    RunFinished,
    RunNotFound,
    RunTimedOut,
    StepFailed,
)
from .handles import RunHandle, aget_run, get_run
from .jobs import Job, get_job, job, registered_jobs
from .operations import cancel_run, fork_run, restart_run, retry_run, send_event
from .retry import RetryPolicy
from .schedules import schedule
from .status import RunStatus

__all__ = [
    "AtomicStepTimeout",
    "ChildRunFailed",
    "ChildRunMissing",
    "DurableError",
    "EventTimeout",
    "InvalidEventName",
    "InvalidRunId",
    "Job",
    "JobNotRegistered",
    "LeaseLost",
    "MalformedRun",
    "NonDeterminismError",
    "PayloadTooLarge",
    "RetryPolicy",
    "RunCancelled",
    "RunFinished",
    "RunHandle",
    "RunNotFound",
    "RunStatus",
    "RunTimedOut",
    "StepFailed",
    "aget_run",
    "cancel_run",
    "fork_run",
    "get_job",
    "get_run",
    "job",
    "registered_jobs",
    "restart_run",
    "retry_run",
    "schedule",
    "send_event",
]
