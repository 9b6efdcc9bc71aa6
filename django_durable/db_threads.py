"""Threads that do the database work of async runs, off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple[Callable[[], Any], "concurrent.futures.Future[Any]"]


class DatabaseThreads:
    """``count`` threads, each on its own database connection, kept open while they
    live: however many async runs a worker holds, their journal work uses this many
    connections. Awaiting the instance runs a sync function on one of them (with the
    caller's context variables, so trace spans continue)."""

    def __init__(self, count: int, name: str = "durable-db") -> None:
        if count < 1:
            raise ValueError("DatabaseThreads needs at least one thread")
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    async def __call__(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        context = contextvars.copy_context()
        self._work.put((functools.partial(context.run, fn, *args, **kwargs), future))
        return await asyncio.wrap_future(future)

    def _serve(self) -> None:
        try:
            while (work := self._work.get()) is not None:
                call, future = work
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    future.set_result(call())
                except BaseException as error:  # the awaiting run handles it, as its own
                    future.set_exception(error)
                finally:
                    reset_broken_connections()
        finally:
            connections.close_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the threads' connections once the work already queued is done."""
        for _ in self._threads:
            self._work.put(None)
        for thread in self._threads:
            thread.join(timeout)


def reset_broken_connections() -> None:
    """Drop this thread's connections that saw an error and no longer answer."""
    for connection in connections.all(initialized_only=True):
        if connection.errors_occurred and not connection.is_usable():
            connection.close()
