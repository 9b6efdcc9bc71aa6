"""Instant pickup on PostgreSQL: NOTIFY when runs become runnable, LISTEN in workers.

``announce`` queues a notification inside the caller's transaction, so PostgreSQL
delivers it only if that transaction commits. Other databases poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from .conf import durable_settings

logger = logging.getLogger("django_durable")

CHANNEL = "django_durable"


def announce(alias: str, queue_names: Iterable[str]) -> None:
    """Tell listening workers that runs of these queues became runnable (PostgreSQL)."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for queue_name in set(queue_names):
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, queue_name])


def listen_alias() -> str | None:
    """The alias to LISTEN on, or None to poll (not PostgreSQL, or disabled)."""
    configured = durable_settings.LISTEN_DATABASE
    if configured is False:
        return None
    alias = configured or durable_settings.DATABASE
    return alias if connections[alias].vendor == "postgresql" else None


class Listener(threading.Thread):
    """Calls ``on_notify`` whenever a run of one of ``queues`` (None: any) is announced."""

    def __init__(
        self,
        alias: str,
        queues: Iterable[str] | None,
        on_notify: Callable[[], None],
        stopping: threading.Event,
    ) -> None:
        super().__init__(name="durable-listener", daemon=True)
        self.alias = alias
        self.queues = None if queues is None else set(queues)
        self.on_notify = on_notify
        self.stopping = stopping

    def run(self) -> None:
        connection = connections[self.alias]
        try:
            while not self.stopping.is_set():
                try:
                    self._listen(connection)
                except DatabaseError as error:
                    logger.warning("event=listen_error alias=%s error=%s", self.alias, error)
                    connection.close()
                    self.on_notify()  # runs may have arrived meanwhile: look now
                    self.stopping.wait(1.0)
        finally:
            connection.close()

    def _listen(self, connection: BaseDatabaseWrapper) -> None:
        connection.ensure_connection()
        with connection.wrap_database_errors, connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        raw = connection.connection
        while not self.stopping.is_set():
            with connection.wrap_database_errors:
                for notification in raw.notifies(timeout=1.0):
                    if self.queues is None or notification.payload in self.queues:
                        self.on_notify()
