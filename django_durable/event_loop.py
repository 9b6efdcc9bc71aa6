"""The worker's event loop: runs of ``async def`` jobs, many at a time, on one thread.

Each claimed run becomes a task on the loop; its database work goes to a few
``DatabaseThreads``. The worker's main thread claims, heartbeats and stops these runs as
it does its thread slots' runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from .async_context import Database
from .db_threads import DatabaseThreads
from .storage.base import ClaimedRun

# Connections the loop's journal work uses, whatever --async-concurrency is.
DATABASE_THREADS = 4


class EventLoop:
    """A thread running an asyncio loop that awaits ``execute(claimed, database)`` for
    each run handed to ``submit()``."""

    def __init__(
        self,
        execute: Callable[[ClaimedRun, Database], Coroutine[Any, Any, object]],
        *,
        database_threads: int = DATABASE_THREADS,
    ) -> None:
        self._execute = execute
        self._database_threads = database_threads
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="durable-event-loop", daemon=True)
        self._tasks: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        self._database = DatabaseThreads(self._database_threads)
        self._thread.start()
        self._started.wait()

    def submit(self, claimed: ClaimedRun) -> None:
        """Start executing ``claimed`` on the loop (called from another thread)."""
        self._loop.call_soon_threadsafe(self._spawn, claimed)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel the runs still executing (the worker released or gave up their leases
        already), end the loop and close the database threads' connections."""
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout)
        self._database.stop(timeout)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._started.set()
        await self._stopping.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, claimed: ClaimedRun) -> None:
        task = self._loop.create_task(self._execute(claimed, self._database))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
