"""A real lock error inside a job's durable operation abandons the run, never fails it.

Another connection holds the lock our write needs: SQLite's write lock past a short busy
timeout, or on PostgreSQL a table lock past a ``lock_timeout``. No mocks: the database
raises the error.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connection, transaction

from django_durable import RunStatus
from django_durable.jobs import registered_jobs
from django_durable.models import Run
from django_durable.runner import execute_run
from django_durable.storage import get_storage
from django_durable.testing import run_until_idle
from tests.testapp import jobs
from tests.testapp.jobs import executions

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "mysql", reason="the lock is held through SQLite or PostgreSQL"
    ),
]


class LockHolder:
    """Another connection that takes the lock our next write needs, until ``release``."""

    def __init__(self) -> None:
        settings = connection.settings_dict
        if connection.vendor == "sqlite":
            self._db = sqlite3.connect(
                settings["NAME"], isolation_level=None, check_same_thread=False
            )
            self._db.execute("BEGIN IMMEDIATE")  # SQLite's one write lock
        else:
            import psycopg

            self._db = psycopg.connect(
                dbname=settings["NAME"],
                user=settings["USER"],
                password=settings["PASSWORD"],
                host=settings["HOST"],
                port=settings["PORT"] or 5432,
            )
            # Readers and row locks pass, inserts and updates of runs wait.
            self._db.execute("LOCK TABLE django_durable_run IN SHARE MODE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self._db.rollback()
            self.held = False

    def close(self) -> None:
        self.release()
        self._db.close()


@pytest.fixture
def short_lock_wait() -> Iterator[None]:
    """Make this process's connection give up on a lock after 0.2 s."""
    if connection.vendor == "sqlite":
        options = connection.settings_dict["OPTIONS"]
        saved = options.get("timeout")
        connection.close()
        options["timeout"] = 0.2
        try:
            yield
        finally:
            connection.close()
            options["timeout"] = saved
    else:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '200ms'")
        try:
            yield
        finally:
            connection.close()  # a new session, without the setting


class ReleaseOn(logging.Handler):
    """Release the holder's lock as soon as the worker logs ``marker``."""

    def __init__(self, holder: LockHolder, marker: str) -> None:
        super().__init__(logging.DEBUG)
        self.holder = holder
        self.marker = marker
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.marker in message:
            self.seen.append(message)
            self.holder.release()


@pytest.fixture
def durable_log() -> Iterator[logging.Logger]:
    logger = logging.getLogger("django_durable")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    handlers = list(logger.handlers)
    yield logger
    logger.setLevel(level)
    for handler in logger.handlers[:]:
        if handler not in handlers:
            logger.removeHandler(handler)


def claim(job_name: str):
    storage = get_storage()
    (claimed,) = storage.claim(owner="test", job_names=[job_name], queues=None, limit=1)
    return storage, claimed


def test_start_children_that_cannot_get_the_lock_is_abandoned_and_given_back(
    short_lock_wait, durable_log
):
    handle = jobs.fan_out.enqueue([1, 2])
    storage, claimed = claim("tests.fan_out")
    holder = LockHolder()
    watcher = ReleaseOn(holder, "outcome=storage_error")
    durable_log.addHandler(watcher)
    try:
        status = execute_run(storage, claimed, registered_jobs()["tests.fan_out"])
    finally:
        holder.close()
    # The database refused the lock: the run is given back, not failed, not retried.
    (abandoned,) = watcher.seen
    assert "lock" in abandoned.lower()
    assert status == RunStatus.PENDING
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.errors, run.attempt, run.recoveries) == (
        RunStatus.PENDING,
        [],
        1,
        0,
    )
    assert not Run.objects.filter(parent_id=handle.id).exists()  # rolled back with it
    assert executions(handle.id, "started") == 0

    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.output, run.errors) == (RunStatus.COMPLETED, 5, [])
    assert Run.objects.filter(parent_id=handle.id).count() == 2
    assert executions(handle.id, "started") == 1


def test_a_lock_held_past_every_try_leaves_the_run_to_recovery_not_failed(
    short_lock_wait, durable_log
):
    handle = jobs.fan_out.enqueue([1])
    storage, claimed = claim("tests.fan_out")
    holder = LockHolder()
    try:
        status = execute_run(storage, claimed, registered_jobs()["tests.fan_out"])
    finally:
        holder.close()
    assert status is None  # abandoned: its lease expires and another worker recovers it
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.errors) == (RunStatus.RUNNING, [])
    assert not Run.objects.filter(parent_id=handle.id).exists()


def test_our_own_write_outside_a_transaction_is_tried_again(short_lock_wait, durable_log):
    holder = LockHolder()
    watcher = ReleaseOn(holder, "event=lock_retry")
    durable_log.addHandler(watcher)
    try:
        handle = jobs.echo.enqueue("once")
    finally:
        holder.close()
    assert len(watcher.seen) == 1 and "attempt=1" in watcher.seen[0]
    assert Run.objects.filter(pk=handle.id, status=RunStatus.PENDING).count() == 1


@pytest.mark.skipif(
    connection.vendor == "sqlite",
    reason="with the suite's IMMEDIATE mode the caller's BEGIN itself takes SQLite's lock",
)
def test_a_lock_error_inside_the_callers_transaction_surfaces_untried(short_lock_wait, durable_log):
    retries = ReleaseOn(LockHolder.__new__(LockHolder), "event=lock_retry")
    retries.holder.held = False
    durable_log.addHandler(retries)
    holder = LockHolder()
    try:
        with pytest.raises(OperationalError, match="lock timeout"), transaction.atomic():
            jobs.echo.enqueue("in the caller's transaction")
    finally:
        holder.close()
    assert retries.seen == []
    assert not Run.objects.exists()
