"""A worker's presence: its row in the registry of live workers, and its health file.

The registry (the admin's overview, ``durable workers``, the metrics) is renewed as often
as leases are; the health file, for a liveness probe, after every loop that reached the
database.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from pathlib import Path

from django.db import DatabaseError

from .conf import durable_settings
from .storage.base import Storage, WorkerInfo

logger = logging.getLogger("django_durable")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Presence:
    def __init__(self, storage: Storage, info: WorkerInfo) -> None:
        self.storage = storage
        self.info = info
        self.next_at = 0.0

    def seen_if_due(self, now: float) -> None:
        """Tell the registry this worker is alive, once per heartbeat interval."""
        if now < self.next_at:
            return
        self.storage.worker_seen(self.info)
        self.next_at = now + durable_settings.heartbeat_interval

    def stopped(self) -> None:
        try:
            self.storage.worker_stopped(self.info.worker_id)
        except DatabaseError as error:  # the row ages out of the overview by itself
            logger.warning("worker=%s event=unregister_failed error=%s", self.info.worker_id, error)


def worker_info(
    worker_id: str, queues: list[str] | None, jobs: list[str], concurrency: int
) -> WorkerInfo:
    return WorkerInfo(
        worker_id=worker_id,
        hostname=socket.gethostname(),
        pid=os.getpid(),
        queues=queues,
        jobs=jobs,
        concurrency=concurrency,
    )


class HealthFile:
    """A file touched after every loop that reached the database (``--health-file``)."""

    def __init__(self, path: str | Path, worker_id: str) -> None:
        self.path = Path(path)
        self.worker_id = worker_id
        self.failed = False

    def touch(self) -> None:
        try:
            self.path.touch()
        except OSError as error:
            # Said once: the probe that reads the file will fail and say the rest.
            if not self.failed:
                logger.error(
                    "worker=%s event=health_file_failed path=%s error=%s",
                    self.worker_id,
                    self.path,
                    error,
                )
            self.failed = True
        else:
            self.failed = False
