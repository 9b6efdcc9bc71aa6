"""``runworker --health-file``: touched while the loop reaches the database, and only then.

A real worker process keeps the file fresh and stops when it is frozen (SIGSTOP, as a
hung process would); a worker in this process whose storage fails leaves it untouched
while it backs off, and touches it again once the database answers.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError

from django_durable.storage import storage_class
from django_durable.storage.base import ClaimedRun
from django_durable.worker import Worker
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def mtime(path) -> float:
    return path.stat().st_mtime_ns / 1e9


def advances(path, *, within: float) -> bool:
    before = mtime(path)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if mtime(path) > before:
            return True
        time.sleep(0.05)
    return False


def test_a_running_worker_keeps_the_file_fresh_and_a_frozen_one_does_not(tmp_path):
    health = tmp_path / "alive"
    worker = WorkerProcess(tmp_path / "worker.log", "--health-file", str(health))
    try:
        wait_until(health.exists, what="the health file")
        assert advances(health, within=5), worker.output
        worker.process.send_signal(signal.SIGSTOP)
        time.sleep(0.3)  # a touch under way when the signal came lands first
        assert not advances(health, within=1.5)  # fifteen poll intervals
        worker.process.send_signal(signal.SIGCONT)
        assert advances(health, within=5), worker.output
    finally:
        worker.process.send_signal(signal.SIGCONT)
        assert worker.terminate() == 0, worker.output


class Unreachable(storage_class("default")):  # the test database's own storage class
    """Storage whose claims fail as a lost database's would, until told otherwise."""

    def __init__(self) -> None:
        super().__init__("default")
        self.down = True
        self.failed = threading.Event()

    def claim(self, **kwargs: Any) -> list[ClaimedRun]:
        if self.down:
            self.failed.set()
            raise DatabaseError("server closed the connection unexpectedly")
        return super().claim(**kwargs)


def test_a_worker_backing_off_after_database_errors_does_not_touch_it(settings, tmp_path):
    settings.DURABLE = {**settings.DURABLE, "LISTEN_DATABASE": False}
    health = tmp_path / "alive"
    storage = Unreachable()
    worker = Worker(queues=None, poll_interval=0.01, storage=storage, health_file=health)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert storage.failed.wait(10)
        time.sleep(0.3)  # several failed loops and backoffs
        assert not health.exists()
        storage.down = False
        wait_until(health.exists, timeout=15, what="the health file after reconnecting")
    finally:
        worker.stop()
        thread.join(30)


def test_the_files_directory_must_exist(tmp_path):
    with pytest.raises(CommandError, match="directory does not exist"):
        call_command("runworker", "--burst", "--health-file", str(tmp_path / "no" / "alive"))
