"""``DurableBackend``: Django's ``django.tasks`` API, executed as durable runs.

``TASKS = {"default": {"BACKEND": "django_durable.tasks.DurableBackend"}}`` turns every
``@task`` of that backend into a registered job named by the task's ``module_path``;
``enqueue`` stores a run in the caller's transaction and ``runworker`` executes it with
leases, recovery, timeouts and cancellation. On Django 5.2 the same backend serves the
``django-tasks`` backport (the ``tasks`` extra).

How workers know the tasks: a worker never imports a dotted path read from the database.
Django's ``Task.__post_init__`` calls ``backend.validate_task(task)`` when ``@task`` builds
the task (and again for each ``using()`` copy), so ``validate_task`` registers the task's
job. Importing the module that defines a task is therefore enough, in a web process or a
worker, and ``DurableConfig.ready()`` imports every installed app's ``tasks.py`` when a
``TASKS`` entry uses this backend, as it does for ``jobs.py``. A task defined elsewhere is
known to workers only if something imports its module at startup.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from . import signals
from .async_context import AsyncRunContext, database_of
from .conf import durable_settings
from .context import RunContext, RunFacts, journal_of
from .durations import optional_timedelta
from .exceptions import InvalidRunId, RunNotFound
from .handles import RunHandle, get_run
from .jobs import Job, get_job, job
from .models import RunLog
from .retry import RetryPolicy
from .status import RunStatus

if TYPE_CHECKING:
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
else:
    try:
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
        from django.tasks.exceptions import TaskResultDoesNotExist
        from django.tasks.signals import task_enqueued, task_finished, task_started
    except ImportError:  # Django 5.2: the django-tasks backport, same API
        try:
            from django_tasks.backends.base import BaseTaskBackend
            from django_tasks.base import (
                Task,
                TaskContext,
                TaskError,
                TaskResult,
                TaskResultStatus,
            )
            from django_tasks.exceptions import TaskResultDoesNotExist
            from django_tasks.signals import task_enqueued, task_finished, task_started
        except ImportError as error:
            raise ImproperlyConfigured(
                "django_durable.tasks.DurableBackend needs django.tasks (Django 6) or, on "
                "Django 5.2, the django-tasks backport: pip install 'django-durable-runs[tasks]' "
                f"({error})"
            ) from error

__all__ = ["DurableBackend", "DurableTaskContext"]

# The stubs make TaskContext generic; at runtime it is a plain class.
if TYPE_CHECKING:
    _TaskContextBase: TypeAlias = TaskContext[..., Any]
else:
    _TaskContextBase = TaskContext

CANCELLED_CLASS_PATH = "django_durable.exceptions.RunCancelled"
# Each execution of a task's run stores this line, then the worker id, in the run's log:
# the source of TaskResult.worker_ids and last_attempted_at (runs keep no attempt history).
EXECUTED_BY = "django.tasks: executed by worker "

# module_path -> the Task whose function the registered job calls, to build results.
_tasks: dict[str, Task[..., Any]] = {}


# The stubs do not declare TaskContext a (frozen) dataclass, as it is at runtime.
@dataclass(frozen=True, slots=True, kw_only=True)
class DurableTaskContext(_TaskContextBase):  # type: ignore[misc]
    """What a ``takes_context=True`` task receives: Django's ``TaskContext`` plus
    ``durable``, the run context, for steps, sleeps and events inside a plain task."""

    durable: RunContext | AsyncRunContext

    @property
    def attempt(self) -> int:
        """The run-level attempt, from 1 (recoveries after a crash do not count)."""
        return self.durable.attempt


class DurableBackend(BaseTaskBackend):
    """Runs every task of this backend as a durable run executed by ``runworker``."""

    # run_after becomes the run's run_after, kept in the database until then.
    supports_defer = True
    # An async def task is an async job, awaited on the worker's event loop.
    supports_async_task = True
    # Any process reads the run back from the database.
    supports_get_result = True
    # The claim order is priority first, the same -100..100 range as django.tasks.
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.job_options = _job_options(alias, self.options)

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks, then register the task's job (see the module docstring)."""
        super().validate_task(task)
        _register_task(task, self.job_options.get(task.module_path, {}))

    def enqueue(
        self, task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[Any, Any]:
        """Store a run of ``task`` in the caller's transaction; ``task_enqueued`` is sent
        once that transaction commits. Non-JSON arguments raise and store nothing."""
        self.validate_task(task)
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            run_after = timezone.make_aware(run_after)  # USE_TZ = False: local time
        durable_job = get_job(task.module_path).using(
            priority=task.priority, queue_name=task.queue_name, run_after=run_after
        )
        handle = durable_job.enqueue(*args, **kwargs)
        result = _result(task, handle, executions=[])
        transaction.on_commit(
            lambda: task_enqueued.send(sender=type(self), task_result=result),
            using=durable_settings.DATABASE,
        )
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """The task result of the run ``result_id``; ``TaskResultDoesNotExist`` when no
        such run exists, the id is not a run id, or the run is not of a known task."""
        try:
            handle = get_run(result_id)
        except (InvalidRunId, RunNotFound):
            raise TaskResultDoesNotExist(result_id) from None
        task = _tasks.get(handle.job_name)
        if task is None:
            raise TaskResultDoesNotExist(
                f"{result_id} is a run of {handle.job_name!r}, not of a task this process knows"
            )
        return _result(task, handle, executions=_executions(handle.id))

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """The app is installed and ``DURABLE["DATABASE"]`` names a configured database."""
        errors: list[checks.CheckMessage] = []
        if "django_durable" not in {app.split(".")[0] for app in settings.INSTALLED_APPS}:
            errors.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] uses DurableBackend but django_durable is not "
                    "in INSTALLED_APPS",
                    hint='Add "django_durable" to INSTALLED_APPS and run migrate.',
                    id="django_durable.T001",
                )
            )
        if durable_settings.DATABASE not in settings.DATABASES:
            errors.append(
                checks.Error(
                    f"TASKS[{self.alias!r}] stores runs in DURABLE['DATABASE'] = "
                    f"{durable_settings.DATABASE!r}, which is not in DATABASES",
                    hint="Set DURABLE['DATABASE'] to an alias of DATABASES.",
                    id="django_durable.T002",
                )
            )
        return errors


def _job_options(alias: str, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``OPTIONS["TASKS"]``: per task path, the run-level options a task cannot express
    (``retry``, a RetryPolicy; ``timeout``, a timedelta or seconds), checked here."""
    where = f"TASKS[{alias!r}]['OPTIONS']"
    if set(options) - {"TASKS"}:
        raise ImproperlyConfigured(f"{where} takes only 'TASKS', got {sorted(options)}")
    per_task = options.get("TASKS", {})
    if not isinstance(per_task, dict):
        raise ImproperlyConfigured(f"{where}['TASKS'] must be a dict of task path -> options")
    checked: dict[str, dict[str, Any]] = {}
    for path, given in per_task.items():
        if not isinstance(given, dict) or set(given) - {"retry", "timeout"}:
            raise ImproperlyConfigured(
                f"{where}['TASKS'][{path!r}] must be a dict with 'retry' and/or 'timeout', "
                f"got {given!r}"
            )
        retry = given.get("retry")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ImproperlyConfigured(
                f"{where}['TASKS'][{path!r}]['retry'] must be a RetryPolicy, got {retry!r}"
            )
        try:
            timeout = optional_timedelta(given.get("timeout"), "timeout", positive=True)
        except (TypeError, ValueError) as error:
            raise ImproperlyConfigured(f"{where}['TASKS'][{path!r}]: {error}") from None
        checked[path] = {"retry": retry, "timeout": timeout}
    return checked


def _register_task(task: Task[..., Any], options: dict[str, Any]) -> Job:
    path = task.module_path
    known = _tasks.get(path)
    if known is not None and known.func is task.func and known.takes_context == task.takes_context:
        return get_job(path)
    registered = job(name=path, **options)(_job_function(task))
    _tasks[path] = task
    return registered


def _job_function(task: Task[..., Any]) -> Callable[..., Any]:
    """A job function (ctx first) that sends ``task_started`` and calls the task; an
    async job for an ``async def`` task."""

    def run_task(ctx: RunContext, *args: Any, **kwargs: Any) -> Any:
        return _call(task, _started(task, ctx), ctx, args, kwargs)

    async def run_async_task(ctx: AsyncRunContext, *args: Any, **kwargs: Any) -> Any:
        result = await database_of(ctx)(_started, task, ctx)
        return await _call(task, result, ctx, args, kwargs)

    function: Callable[..., Any] = (
        run_async_task if inspect.iscoroutinefunction(task.func) else run_task
    )

    # The job's name, origin and argument check are the task function's.
    parameters = list(inspect.signature(task.func).parameters.values())
    if task.takes_context:
        parameters = parameters[1:]
    ctx_parameter = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_ONLY)
    function.__signature__ = inspect.Signature([ctx_parameter, *parameters])  # type: ignore[attr-defined]
    function.__module__ = task.func.__module__
    function.__qualname__ = task.func.__qualname__
    return function


def _started(task: Task[..., Any], ctx: RunFacts) -> TaskResult[..., Any]:
    """Name this execution's worker in the run's log and send ``task_started``."""
    # Stored at once, so a crash later in this execution still leaves its worker named.
    journal_of(ctx).store_log_now(logging.INFO, f"{EXECUTED_BY}{ctx.worker_id}")
    result = _result(task, get_run(ctx.run_id), executions=_executions(ctx.run_id))
    task_started.send(sender=type(task.get_backend()), task_result=result)
    return result


def _call(
    task: Task[..., Any],
    result: TaskResult[..., Any],
    ctx: RunContext | AsyncRunContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if task.takes_context:
        return task.func(DurableTaskContext(task_result=result, durable=ctx), *args, **kwargs)
    return task.func(*args, **kwargs)


def _executions(run_id: uuid.UUID) -> list[tuple[str, datetime]]:
    """(worker id, when) for each execution of the run, oldest first."""
    rows = (
        RunLog.objects.using(durable_settings.DATABASE)
        .filter(run_id=run_id, message__startswith=EXECUTED_BY)
        .order_by("id")
        .values_list("message", "created_at")
    )
    return [(message.removeprefix(EXECUTED_BY), when) for message, when in rows]


def _status(handle: RunHandle) -> TaskResultStatus:
    if handle.status == RunStatus.PENDING:
        return TaskResultStatus.READY
    if handle.status == RunStatus.WAITING:
        return TaskResultStatus.READY if handle.started_at is None else TaskResultStatus.RUNNING
    if handle.status == RunStatus.RUNNING:
        return TaskResultStatus.RUNNING
    if handle.status == RunStatus.COMPLETED:
        return TaskResultStatus.SUCCESSFUL
    return TaskResultStatus.FAILED


def _errors(handle: RunHandle) -> list[TaskError]:
    errors = [
        TaskError(exception_class_path=error["type"], traceback=error.get("traceback", ""))
        for error in handle.errors
    ]
    if handle.status == RunStatus.CANCELLED:
        errors.append(
            TaskError(
                exception_class_path=CANCELLED_CLASS_PATH,
                traceback=f"{CANCELLED_CLASS_PATH}: run {handle.id} was cancelled\n",
            )
        )
    return errors


def _result(
    task: Task[..., Any], handle: RunHandle, *, executions: list[tuple[str, datetime]]
) -> TaskResult[..., Any]:
    started: datetime | None = handle.started_at
    result: TaskResult[..., Any] = TaskResult(
        task=task,
        id=str(handle.id),
        status=_status(handle),
        enqueued_at=handle.created_at,
        started_at=started,
        finished_at=handle.finished_at,
        # A run started before its executions were logged: its first start stands in.
        last_attempted_at=executions[-1][1] if executions else started,
        args=list(handle.args),
        kwargs=dict(handle.kwargs),
        backend=task.backend,
        errors=_errors(handle),
        # One entry per execution, as Django's database backend records them: a run
        # recovered after its worker was killed names both workers.
        worker_ids=[worker_id for worker_id, _ in executions],
    )
    if handle.status == RunStatus.COMPLETED:
        object.__setattr__(result, "_return_value", handle.output)
    return result


def _announce_finished(sender: Any, run: RunHandle, **kwargs: Any) -> None:
    """Send ``task_finished`` once a task's run has ended (after the write is committed)."""
    task = _tasks.get(run.job_name)
    if task is not None:
        result = _result(task, run, executions=_executions(run.id))
        task_finished.send(sender=type(task.get_backend()), task_result=result)


signals.run_completed.connect(_announce_finished, dispatch_uid="django_durable.tasks.completed")
signals.run_failed.connect(_announce_finished, dispatch_uid="django_durable.tasks.failed")
signals.run_cancelled.connect(_announce_finished, dispatch_uid="django_durable.tasks.cancelled")
