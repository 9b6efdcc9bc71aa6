"""Durable execution for Django: jobs of checkpointed steps, journaled in your database."""

from .exceptions import (
    ChildRunFailed,
    DurableError,
    EventTimeout,
    JobNotRegistered,
    LeaseLost,
    NonDeterminismError,
    RunNotFound,
    StepFailed,
)
from .handles import RunHandle, aget_run, get_run
from .jobs import Job, get_job, job, registered_jobs
from .operations import send_event
from .retry import RetryPolicy
from .status import RunStatus

__all__ = [
    "ChildRunFailed",
    "DurableError",
    "EventTimeout",
    "Job",
    "JobNotRegistered",
    "LeaseLost",
    "NonDeterminismError",
    "RetryPolicy",
    "RunHandle",
    "RunNotFound",
    "RunStatus",
    "StepFailed",
    "aget_run",
    "get_job",
    "get_run",
    "job",
    "registered_jobs",
    "send_event",
]
