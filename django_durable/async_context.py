"""``AsyncRunContext``: the ``ctx`` of an ``async def`` job, every operation awaited.

Each operation is the sync one of ``RunContext`` on the same ``Journal``, run off the
event loop by ``database`` (the worker's database threads, or Django's thread-sensitive
path when a thread slot runs the job), so replay, fencing and the journal are the sync
engine's. A step's function runs in a thread-sensitive context of its own (asgiref's
``ThreadSensitiveContext``): its ORM calls, sync or through Django's async ORM, get a
thread of their own instead of queueing behind every other run's on one, and the
connections that thread opened are closed when the step ends. An ``async def`` step
function is awaited on the event loop; the step's thread waits for it, so an atomic step
keeps its transaction on that thread's connection, which the function's ORM calls use.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from django.db import connections

from .context import RunContext, RunFacts
from .journal import Journal
from .retry import RetryPolicy
from .waiting import ChildHandle

if TYPE_CHECKING:
    from .jobs import Job

P = ParamSpec("P")
T = TypeVar("T")


class Database(Protocol):
    """Runs a sync function that may use the database off the event loop."""

    def __call__(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> Awaitable[T]: ...


async def thread_sensitive(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``Database`` on Django's thread-sensitive path: for an async job run by
    ``async_to_sync`` from a thread, that thread and its connection."""
    return await sync_to_async(fn)(*args, **kwargs)


class AsyncRunContext(RunFacts):
    """Passed to every ``async def`` job as its first argument: ``RunContext``'s
    operations, awaited. ``log`` is not awaited: it only buffers on the event loop, and
    the next awaited operation stores the lines."""

    def __init__(self, journal: Journal, database: Database) -> None:
        super().__init__(journal)
        self._sync = RunContext(journal)
        self._database = database

    async def step(
        self,
        name: str,
        fn: Callable[[], Awaitable[T]] | Callable[[], T],
        *,
        retry: RetryPolicy | None = None,
        atomic: bool = False,
    ) -> T:
        """``RunContext.step``, awaited; ``fn`` is an ``async def`` function or a plain one
        (what a plain one returns is awaited if it can be). A plain ``fn`` runs on a
        thread, so blocking code does not stall other runs;
        ``atomic=True`` runs ``fn`` (either kind) inside the transaction that writes its
        checkpoint, on the step's own connection."""
        if not atomic:
            # Earlier checkpoints go from a database thread, whose connection stays open,
            # so the step's own thread opens one only if ``fn`` uses the ORM.
            await self._database(self._journal.flush_before, "step", name)
        step = sync_to_async(self._sync.step)
        if self._database is thread_sensitive:
            # A thread slot (or run_until_idle) runs the job: its thread does it all, on
            # its connection (in a test, the test's transaction).
            return await step(name, _blocking(fn), retry=retry, atomic=atomic)
        async with ThreadSensitiveContext():
            try:
                return await step(name, _blocking(fn), retry=retry, atomic=atomic)
            finally:
                await sync_to_async(connections.close_all)()

    async def sleep(self, name: str, delay: timedelta | float) -> None:
        """``RunContext.sleep``, awaited: the run gives up its slot until it wakes."""
        await self._database(self._sync.sleep, name, delay)

    async def sleep_until(self, name: str, when: datetime) -> None:
        """``RunContext.sleep_until``, awaited."""
        await self._database(self._sync.sleep_until, name, when)

    async def wait_for_event(self, name: str, timeout: timedelta | float | None = None) -> Any:
        """``RunContext.wait_for_event``, awaited."""
        return await self._database(self._sync.wait_for_event, name, timeout)

    async def start_child(self, job: Job, *args: Any, **kwargs: Any) -> ChildHandle:
        """``RunContext.start_child``, awaited."""
        return await self._database(self._sync.start_child, job, *args, **kwargs)

    async def start_children(
        self, job: Job, kwargs_list: Sequence[Mapping[str, Any]]
    ) -> list[ChildHandle]:
        """``RunContext.start_children``, awaited."""
        return await self._database(self._sync.start_children, job, kwargs_list)

    async def wait_for_children(self, handles: Sequence[ChildHandle]) -> list[Any]:
        """``RunContext.wait_for_children``, awaited."""
        return await self._database(self._sync.wait_for_children, handles)

    async def patched(self, name: str) -> bool:
        """``RunContext.patched``, awaited."""
        return await self._database(self._sync.patched, name)

    async def deprecate_patch(self, name: str) -> None:
        """``RunContext.deprecate_patch``, awaited."""
        await self._database(self._sync.deprecate_patch, name)

    async def check_cancelled(self) -> None:
        """``RunContext.check_cancelled``, awaited: ``RunCancelled`` if someone cancelled
        this run (operations also check at their start)."""
        await self._database(self._sync.check_cancelled)

    async def progress(self, done: float, total: float | None = None, message: str = "") -> None:
        """``RunContext.progress``, awaited."""
        await self._database(self._sync.progress, done, total, message)


def _blocking(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` as a plain function for the step's thread: awaitables it makes are
    awaited on the event loop while the thread waits."""
    if inspect.iscoroutinefunction(fn):
        return async_to_sync(fn)

    def call() -> Any:
        result = fn()
        if inspect.isawaitable(result):
            return async_to_sync(_await)(result)
        return result

    return call


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def database_of(ctx: AsyncRunContext) -> Database:
    """How ``ctx``'s run reaches the database off the event loop, for the library's own
    job wrappers (the ``django.tasks`` backend's start of an async task)."""
    return ctx._database
