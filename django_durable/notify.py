"""Instant pickup on PostgreSQL: NOTIFY when runs become runnable, LISTEN in workers.

``announce`` sends a notification when the caller's transaction commits, never if it
rolls back, where the alias's storage class ``notifies``. Other databases poll.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .conf import durable_settings
from .storage import storage_class

logger = logging.getLogger("django_durable")

CHANNEL = "django_durable"
# How long a worker waits for its own probe notification before it polls instead.
PROBE_TIMEOUT = 5.0


class _Announcement:
    """Queues to announce once the transaction commits, in one NOTIFY statement."""

    def __init__(self, alias: str, queue_names: set[str]) -> None:
        self.alias = alias
        self.queue_names = queue_names

    def __call__(self) -> None:
        _notify(self.alias, self.queue_names)


def announce(alias: str, queue_names: Iterable[str]) -> None:
    """Tell listening workers that runs of these queues became runnable (PostgreSQL).

    Inside a transaction, the notification is sent when it commits (never if it rolls
    back), once for all the runs it made runnable: enqueueing many runs in one
    transaction costs one NOTIFY, not one per run.
    """
    names = set(queue_names)
    if not names or not storage_class(alias).notifies:
        return
    connection = connections[alias]
    if not connection.in_atomic_block:
        _notify(alias, names)
        return
    # Join the announcement registered at this savepoint level, if any: one made in an
    # inner savepoint could be rolled back without this run's savepoint.
    level = set(connection.savepoint_ids)
    for entry in connection.run_on_commit:  # (savepoint ids, callback, robust)
        savepoints, callback = entry[0], entry[1]
        if isinstance(callback, _Announcement) and savepoints == level:
            callback.queue_names |= names
            return
    # Robust: the caller's data is committed by then; a lost notification only delays
    # pickup until the workers' next poll.
    transaction.on_commit(_Announcement(alias, names), using=alias, robust=True)


def _notify(alias: str, queue_names: set[str]) -> None:
    # What is announced is committed already; a lost notification only delays pickup
    # until the workers' next poll, so a database error here is logged, never raised.
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SELECT pg_notify(%s, name) FROM unnest(%s::text[]) AS name",
                [CHANNEL, sorted(queue_names)],
            )
    except DatabaseError as error:
        logger.warning("event=notify_failed alias=%s error=%s", alias, str(error).strip())


def listen_alias() -> str | None:
    """The alias to LISTEN on, or None to poll (not PostgreSQL, or disabled)."""
    configured = durable_settings.LISTEN_DATABASE
    if configured is False:
        return None
    alias = configured or durable_settings.DATABASE
    return alias if storage_class(alias).notifies else None


class Listener(threading.Thread):
    """Calls ``on_notify`` whenever a run of one of ``queues`` (None: any) is announced.

    A transaction pooler (PgBouncer in transaction mode) runs LISTEN on whichever server
    connection is free and then hands that connection to other clients: nothing arrives.
    So after connecting, the listener first checks that a notification sent from another
    connection reaches it, on a channel of its own (so no other worker is woken, and a
    LISTEN the pooler strands on a server connection collects nothing but that probe).
    If it does not arrive in time the listener stops and ``on_polling`` says why; the
    worker polls anyway, so it only loses instant pickup.
    """

    def __init__(
        self,
        alias: str,
        queues: Iterable[str] | None,
        on_notify: Callable[[], None],
        stopping: threading.Event,
        *,
        on_listening: Callable[[], None] = lambda: None,
        on_polling: Callable[[str], None] = lambda reason: None,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        super().__init__(name="durable-listener", daemon=True)
        self.alias = alias
        self.queues = None if queues is None else set(queues)
        self.on_notify = on_notify
        self.stopping = stopping
        self.on_listening = on_listening
        self.on_polling = on_polling
        self.probe_timeout = probe_timeout

    def run(self) -> None:
        connection = connections[self.alias]
        try:
            while not self.stopping.is_set():
                try:
                    if not self._listen(connection):
                        return
                except Exception as error:
                    # Never let the listener thread die: a terminated connection, a
                    # failover, or anything else, costs only instant pickup until it
                    # listens again.
                    logger.warning("event=listen_error alias=%s error=%s", self.alias, error)
                    connection.close()
                    self.on_notify()  # runs may have arrived meanwhile: look now
                    self.stopping.wait(1.0)
        finally:
            connection.close()

    def _listen(self, connection: BaseDatabaseWrapper) -> bool:
        """Listen until stopped (True), or return False at once if nothing can arrive."""
        connection.ensure_connection()
        if not self._notifications_arrive(connection):
            self.on_polling(
                f"a NOTIFY from another connection did not arrive within {self.probe_timeout}s "
                f"of LISTEN on {self.alias!r} (a transaction pooler such as PgBouncer? "
                "set DURABLE['LISTEN_DATABASE'] to a direct connection's alias)"
            )
            return False
        with connection.wrap_database_errors, connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        self.on_listening()
        raw = connection.connection
        while not self.stopping.is_set():
            with connection.wrap_database_errors:
                for notification in raw.notifies(timeout=1.0):
                    if notification.channel != CHANNEL:
                        continue
                    if self.queues is None or notification.payload in self.queues:
                        self.on_notify()
        return True

    def _notifications_arrive(self, connection: BaseDatabaseWrapper) -> bool:
        """LISTEN on a channel of our own; send to it from another connection; wait."""
        probe = f"{CHANNEL}_probe_{uuid.uuid4().hex}"
        with connection.wrap_database_errors, connection.cursor() as cursor:
            cursor.execute(f"LISTEN {probe}")
        # Another connection: through a pooler this one's own NOTIFY could run on the
        # server connection that holds its LISTEN and come straight back to it.
        sender = connections.create_connection(self.alias)
        try:
            with sender.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [probe])
        finally:
            sender.close()
        deadline = time.monotonic() + self.probe_timeout
        arrived = False
        raw = connection.connection
        while not arrived and (left := deadline - time.monotonic()) > 0:
            with connection.wrap_database_errors:
                arrived = any(
                    notification.channel == probe
                    for notification in raw.notifies(timeout=left, stop_after=1)
                )
        if arrived:
            with connection.wrap_database_errors, connection.cursor() as cursor:
                cursor.execute(f"UNLISTEN {probe}")
        return arrived


def start_listening(
    worker_id: str,
    queues: list[str] | None,
    poll_interval: float,
    wake: Callable[[], None],
    stopping: threading.Event,
) -> None:
    """Wake the worker when runs of its queues are announced, or say why it polls."""

    def polling(reason: str, level: int = logging.INFO) -> None:
        logger.log(
            level,
            "worker=%s event=polling interval=%s reason=%s",
            worker_id,
            poll_interval,
            reason,
        )

    alias = listen_alias()
    if alias is None:
        polling(
            "LISTEN_DATABASE is False"
            if durable_settings.LISTEN_DATABASE is False
            else "not PostgreSQL"
        )
        return
    # The listener says which once it has checked that notifications reach it.
    Listener(
        alias,
        queues,
        wake,
        stopping,
        on_listening=lambda: logger.info("worker=%s event=listening alias=%s", worker_id, alias),
        on_polling=lambda reason: polling(reason, logging.WARNING),
    ).start()
