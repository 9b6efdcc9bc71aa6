"""``@job``, the ``Job`` value it makes, and the registry of jobs this process knows."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast, overload

from asgiref.sync import sync_to_async

from . import signals, tracing
from .durations import optional_timedelta, to_timedelta
from .exceptions import JobNotRegistered
from .handles import RunHandle
from .payloads import check_name, stored_args, stored_kwargs
from .retention import DEFAULT as DEFAULT_RETENTION
from .retention import Policy, RetentionSpec, job_policy
from .retry import RetryPolicy
from .storage import get_storage, on_commit
from .storage.base import NewRun

MIN_PRIORITY, MAX_PRIORITY = -100, 100
_UNSET: Any = object()
# Options stored in bounded columns: checked when the job (or a using() copy) is made,
# so a name too long fails at the call, not as a DataError in the caller's transaction.
_NAME_COLUMNS = {
    "name": "Run.job_name",
    "queue_name": "Run.queue_name",
    "idempotency_key": "Run.idempotency_key",
    "concurrency_key": "Run.concurrency_key",
}

_registry: dict[str, Job] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A registered job function and the options its next enqueue will use.

    ``timeout`` is a ``timedelta`` or seconds (kept as a timedelta). ``run_after`` is a
    timezone-aware datetime, or a delay (a ``timedelta`` or seconds, kept as a timedelta)
    that storage adds to the database clock when the run is inserted, so the enqueuing
    host's clock does not matter. Options are checked here: a wrong type is a
    ``TypeError``, a value out of range a ``ValueError``.
    """

    func: Callable[..., Any]
    name: str
    queue_name: str = "default"
    priority: int = 0
    retry: RetryPolicy | None = None
    timeout: timedelta | float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    run_after: datetime | timedelta | float | None = None
    # How long this job's finished runs are kept; None follows DURABLE["RETENTION"].
    retention: RetentionSpec = None
    # The job function's signature without ctx, to check arguments at enqueue.
    signature: inspect.Signature = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.priority, int) or not MIN_PRIORITY <= self.priority <= MAX_PRIORITY:
            raise ValueError(
                f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}, "
                f"got {self.priority!r}"
            )
        for option, column in _NAME_COLUMNS.items():
            value = getattr(self, option)
            if value is not None:
                # The name comes first: the other options' messages quote it.
                where = "the job name" if option == "name" else f"{option} of job {self.name!r}"
                check_name(value, where, column=column)
        if self.retry is not None and not isinstance(self.retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy or None, got {self.retry!r}")
        set_field = object.__setattr__  # frozen: normalise the options in place
        set_field(self, "timeout", optional_timedelta(self.timeout, "timeout", positive=True))
        set_field(self, "run_after", _run_after(self.run_after))
        job_policy(self.retention, DEFAULT_RETENTION)  # checked now, applied when pruning
        parameters = list(inspect.signature(self.func).parameters.values())
        set_field(self, "signature", inspect.Signature(parameters[1:]))

    @property
    def is_async(self) -> bool:
        """True for an ``async def`` job, which the worker runs on its event loop."""
        return inspect.iscoroutinefunction(self.func)

    @property
    def timeout_delta(self) -> timedelta | None:
        """``timeout`` as the timedelta it always is once the job is constructed."""
        return cast("timedelta | None", self.timeout)

    @property
    def run_after_value(self) -> datetime | timedelta | None:
        """``run_after`` once normalised: an aware datetime or a delay (timedelta)."""
        return cast("datetime | timedelta | None", self.run_after)

    def using(
        self,
        *,
        idempotency_key: str | None = _UNSET,
        concurrency_key: str | None = _UNSET,
        priority: int = _UNSET,
        run_after: datetime | timedelta | float | None = _UNSET,
        queue_name: str = _UNSET,
    ) -> Job:
        """A copy of this job with other enqueue options (the registry is unchanged).

        ``run_after`` takes a timezone-aware datetime, or a delay as a ``timedelta`` or a
        number of seconds; a delay counts from the database clock when the run is stored.
        """
        changes: dict[str, Any] = {
            name: value
            for name, value in {
                "idempotency_key": idempotency_key,
                "concurrency_key": concurrency_key,
                "priority": priority,
                "run_after": run_after,
                "queue_name": queue_name,
            }.items()
            if value is not _UNSET
        }
        return replace(self, **changes)

    def check_arguments(self, args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` naming the problem if the job function cannot take these
        arguments (after ``ctx``): a missing, unexpected or repeated argument."""
        try:
            self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise TypeError(f"{self.name}{self.signature}: {error}") from None

    def new_run(
        self,
        args: tuple[Any, ...] | list[Any],
        kwargs: dict[str, Any],
        *,
        scheduled_at: datetime | None = None,
        parent_id: uuid.UUID | None = None,
    ) -> NewRun:
        """The run ``enqueue()`` (or, with ``parent_id``, ``ctx.start_children()``) would
        store, its arguments checked (see ``enqueue()``)."""
        self.check_arguments(args, kwargs)
        return NewRun(
            job_name=self.name,
            queue_name=self.queue_name,
            priority=self.priority,
            args=stored_args(args, self.name),
            kwargs=stored_kwargs(kwargs, self.name),
            idempotency_key=self.idempotency_key,
            concurrency_key=self.concurrency_key,
            run_after=self.run_after_value,
            scheduled_at=scheduled_at,
            parent_id=parent_id,
            trace_context=tracing.current_context(),
        )

    def enqueue(self, *args: Any, **kwargs: Any) -> RunHandle:
        """Store a new run of this job in the caller's transaction and return its handle.

        The arguments are bound to the job function's signature first: a missing or
        unexpected argument is a ``TypeError`` naming it, and nothing is stored. They must
        be JSON (``TypeError``/``ValueError`` otherwise, naming the argument). With an
        idempotency key that already has a run, that run is returned instead and
        ``handle.created`` is False.
        """
        with tracing.enqueue_span(self.name, self.queue_name) as span:
            new = self.new_run(args, kwargs)  # its trace context: this span's
            storage = get_storage()
            record, created = storage.enqueue(new)
            tracing.set_message_id(span, record.id)
        handle = RunHandle.from_record(record, created=created)
        if created:
            on_commit(storage, lambda: signals.send_handle_signal(signals.run_enqueued, handle))
        return handle

    def enqueue_many(self, kwargs_list: Iterable[dict[str, Any]]) -> list[RunHandle]:
        """Store one run per dict of keyword arguments, in the caller's transaction, and
        return their handles in order.

        Every run's arguments are checked first, as ``enqueue()`` checks them: one bad
        call is a ``TypeError``/``ValueError`` naming its index, and nothing is stored.
        The runs are inserted in as few statements as the database allows, with one
        notification for all. An idempotency key names one run, so a job with one takes
        a single call (and returns the existing run as ``enqueue()`` does).
        """
        calls = list(kwargs_list)
        news = []
        for index, kwargs in enumerate(calls):
            if not isinstance(kwargs, dict):
                raise TypeError(
                    f"enqueue_many takes dicts of keyword arguments; item {index} is {kwargs!r}"
                )
            try:
                news.append(self.new_run((), kwargs))
            except (TypeError, ValueError) as error:
                raise type(error)(f"item {index}: {error}") from None
        if self.idempotency_key is not None:
            if len(news) != 1:
                raise ValueError(
                    f"idempotency key {self.idempotency_key!r} names one run; "
                    f"enqueue_many got {len(news)} calls"
                )
            return [self.enqueue(**calls[0])]
        if not news:
            return []
        storage = get_storage()
        with tracing.enqueue_span(self.name, self.queue_name, len(news)):
            # Each run continues this span's trace (new_run() ran before it began).
            context = tracing.current_context()
            news = [replace(new, trace_context=context) for new in news]
            records = storage.enqueue_many(news)
        handles = [RunHandle.from_record(record, created=True) for record in records]

        def announce() -> None:
            for handle in handles:
                signals.send_handle_signal(signals.run_enqueued, handle)

        on_commit(storage, announce)
        return handles

    async def aenqueue(self, *args: Any, **kwargs: Any) -> RunHandle:
        """Async ``enqueue()``: store a run from async code and return its handle."""
        return await sync_to_async(self.enqueue)(*args, **kwargs)

    async def aenqueue_many(self, kwargs_list: Iterable[dict[str, Any]]) -> list[RunHandle]:
        """Async ``enqueue_many()``."""
        return await sync_to_async(self.enqueue_many)(kwargs_list)


def _run_after(value: Any) -> datetime | timedelta | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"run_after must be a timezone-aware datetime, got {value!r}")
        return value
    try:
        return to_timedelta(value, "run_after")
    except TypeError:
        raise TypeError(
            "run_after must be a timezone-aware datetime, a timedelta or a number of "
            f"seconds, got {value!r} ({type(value).__name__})"
        ) from None


def _origin(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def _register(func: Callable[..., Any], **options: Any) -> Job:
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise TypeError(
            f"{func.__qualname__} must take the run context (ctx) as its first argument"
        )
    name = options.pop("name", None) or f"{func.__module__}.{func.__qualname__}"
    new = Job(func=func, name=name, **options)
    existing = _registry.get(name)
    # A module imported twice re-registers the same function; two functions, one name is a bug.
    if existing is not None and _origin(existing.func) != _origin(func):
        raise ValueError(
            f"two jobs are named {name!r}: {_origin(existing.func)} and {_origin(func)}"
        )
    _registry[name] = new
    return new


@overload
def job(func: Callable[..., Any], /) -> Job: ...
@overload
def job(
    *,
    name: str | None = None,
    queue_name: str = "default",
    priority: int = 0,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    retention: RetentionSpec = None,
) -> Callable[[Callable[..., Any]], Job]: ...
def job(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Register a job: a function taking ``ctx`` first, then JSON arguments.

    Use as ``@job`` or ``@job(name=..., queue_name=..., priority=..., retry=..., timeout=...,
    retention=...)``. ``timeout`` is a ``timedelta`` or a number of seconds; ``retention``
    how long finished runs of the job are kept (see ``DURABLE["RETENTION"]``). Options are
    checked here, at decoration: a wrong type is a ``TypeError`` naming the option and the value.
    """
    if func is not None:
        return _register(func, **options)
    return lambda f: _register(f, **options)


def get_job(name: str) -> Job:
    """The registered job called ``name``; ``JobNotRegistered`` if this process lacks it."""
    try:
        return _registry[name]
    except KeyError:
        raise JobNotRegistered(
            f"no job named {name!r} is registered in this process. Either the code that "
            "defines it is not deployed here, or it is deployed but its module is not "
            "imported at startup: an installed app's jobs.py is autodiscovered, any other "
            "module (say billing/workflows.py) only if something imports it, such as the "
            "app's jobs.py or AppConfig.ready()"
        ) from None


def registered_jobs() -> dict[str, Job]:
    """A copy of the registry: job name -> Job."""
    return dict(_registry)


def job_retention_policies(project: Policy) -> dict[str, Policy]:
    """The policies of registered jobs declared with their own ``retention``."""
    return {
        name: job_policy(job.retention, project)
        for name, job in _registry.items()
        if job.retention is not None
    }


def job_timeouts(jobs: Mapping[str, Job]) -> dict[str, float]:
    """Seconds each job with a ``timeout`` may run, by name: what a claim gives its runs."""
    return {
        name: job.timeout_delta.total_seconds()
        for name, job in jobs.items()
        if job.timeout_delta is not None
    }
