"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (the ``otel`` extra).

Enqueueing is a PRODUCER span, each attempt a worker makes at a run a CONSUMER span and
each step attempt an INTERNAL span under it, named and attributed after OpenTelemetry's
messaging conventions. The enqueuer's trace context is stored with the run
(``Run.trace_context``), so the worker's spans continue the enqueuer's trace in another
process, days later if need be. Without the package every function here is a no-op: no
import is tried again, no context is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .storage.base import RunRecord

SYSTEM = "django_durable"  # messaging.system


@cache
def _api() -> Any:
    """``opentelemetry`` (its ``trace`` and ``propagate``), or None without it."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:
        return None
    return trace, propagate


def _tracer() -> Any:
    trace, _ = _api()
    return trace.get_tracer("django_durable")


def current_context() -> dict[str, str] | None:
    """The active trace context as a carrier to store with a new run (None: none)."""
    if _api() is None:
        return None
    _, propagate = _api()
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


@contextmanager
def enqueue_span(job_name: str, queue_name: str, count: int = 1) -> Iterator[Any]:
    """A PRODUCER span around storing ``count`` runs; yields it (or None) so the caller
    can add the runs' ids."""
    if _api() is None:
        yield None
        return
    trace, _ = _api()
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        "messaging.destination.name": queue_name,
        "durable.job": job_name,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    with _tracer().start_as_current_span(
        f"send {queue_name}", kind=trace.SpanKind.PRODUCER, attributes=attributes
    ) as span:
        yield span


def set_message_id(span: Any, run_id: object) -> None:
    if span is not None:
        span.set_attribute("messaging.message.id", str(run_id))


@contextmanager
def run_span(run: RunRecord) -> Iterator[Any]:
    """A CONSUMER span for one attempt at ``run``, continuing its enqueuer's trace."""
    if _api() is None:
        yield None
        return
    trace, propagate = _api()
    parent = propagate.extract(run.trace_context) if run.trace_context else None
    with _tracer().start_as_current_span(
        f"process {run.queue_name}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.destination.name": run.queue_name,
            "messaging.message.id": str(run.id),
            "durable.job": run.job_name,
            "durable.attempt": run.attempt,
        },
    ) as span:
        yield span


def set_outcome(span: Any, status: str | None, *, failed: bool) -> None:
    """What the attempt left the run as; a failed run marks the span as an error."""
    if span is None:
        return
    trace, _ = _api()
    span.set_attribute("durable.outcome", status or "lease_lost")
    if failed:
        span.set_status(trace.Status(trace.StatusCode.ERROR))


@contextmanager
def step_span(job_name: str, name: str, position: int, attempt: int) -> Iterator[None]:
    """An INTERNAL span for one attempt at a step's body (exceptions are recorded)."""
    if _api() is None:
        yield
        return
    with _tracer().start_as_current_span(
        f"step {name}",
        attributes={
            "durable.job": job_name,
            "durable.step": name,
            "durable.step.position": position,
            "durable.step.attempt": attempt,
        },
    ):
        yield
