"""``--burst`` exits on the database's word that nothing it could claim is left.

One empty claim is not that word: a claim comes back empty while other workers hold the
rows it would take. The first tests run the worker in this process, on the real
database, with a storage whose first claims come back empty whatever is pending; the
last runs two real ``runworker --burst`` processes side by side.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.storage import storage_for
from django_durable.storage.base import ClaimedRun
from django_durable.worker import Worker
from tests.testapp import jobs
from tests.workers import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def poll(settings):
    # In this process a listener thread would outlive the worker and hold a connection.
    settings.DURABLE = {**settings.DURABLE, "LISTEN_DATABASE": False}


class EmptyClaims:
    """The database's storage, but its first ``empty`` claims find nothing, as if other
    workers held it all."""

    def __init__(self, empty: int) -> None:
        self.storage = storage_for("default")
        self.empty_left = empty
        self.claims = 0

    def claim(self, **kwargs: Any) -> list[ClaimedRun]:
        self.claims += 1
        if self.empty_left > 0:
            self.empty_left -= 1
            return []
        return self.storage.claim(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)


def run_burst(storage: Any, timeout: float = 60) -> Worker:
    worker = Worker(burst=True, queues=None, poll_interval=0.01, storage=storage)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        raise AssertionError(f"the --burst worker did not exit within {timeout}s")
    return worker


def test_empty_claims_while_runs_are_pending_do_not_end_the_burst():
    handles = [jobs.echo.enqueue(i) for i in range(3)]
    storage = EmptyClaims(empty=5)
    worker = run_burst(storage)
    assert storage.empty_left == 0  # it asked again after every empty claim
    assert worker.processed == 3
    assert {Run.objects.get(pk=h.id).status for h in handles} == {RunStatus.COMPLETED}


def test_the_burst_ends_when_only_runs_it_cannot_claim_are_left():
    # A run of a key another worker holds, a run waiting for an event, a future run.
    held = jobs.echo.using(concurrency_key="k").enqueue("held")
    storage = storage_for("default")
    (other,) = storage.claim(owner="another worker", job_names=["tests.echo"], queues=None, limit=1)
    assert other.run.id == held.id
    blocked = jobs.echo.using(concurrency_key="k").enqueue("blocked")
    jobs.approval.enqueue()
    later = jobs.echo.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
    counting = EmptyClaims(empty=0)
    worker = run_burst(counting, timeout=30)
    assert worker.processed == 1  # the approval run, which then waits for its event
    assert Run.objects.get(pk=blocked.id).status == RunStatus.PENDING
    assert Run.objects.get(pk=later.id).status == RunStatus.WAITING


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="several writer processes need PostgreSQL/MariaDB"
)
def test_two_burst_workers_never_exit_with_runnable_runs_left(tmp_path):
    for round_ in range(3):
        with transaction.atomic():
            for _ in range(300):
                jobs.drain.enqueue()
        workers = [
            WorkerProcess(tmp_path / f"r{round_}w{i}.log", "--burst", "--concurrency", "4")
            for i in range(2)
        ]
        codes = [worker.wait(120) for worker in workers]
        assert codes == [0, 0], [worker.output for worker in workers]
        left = Run.objects.exclude(status=RunStatus.COMPLETED).values_list("status", flat=True)
        assert list(left) == [], f"round {round_}"
