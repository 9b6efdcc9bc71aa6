"""Workers register themselves for the admin's overview and leave when they stop."""

import pytest

from django_durable.models import Worker
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_registers_beats_and_unregisters_on_exit(tmp_path):
    worker = WorkerProcess(tmp_path / "w.log", "--queue", "default", "--concurrency", "2")
    try:
        wait_until(lambda: Worker.objects.exists(), what="the worker to register")
        row = Worker.objects.get()
        assert row.pid == worker.process.pid
        assert row.queues == ["default"] and row.concurrency == 2
        assert "tests.three_steps" in row.jobs
        first_seen = row.last_seen_at
        # stale_after=2.0 in WorkerProcess: a beat every 2/3 s.
        wait_until(lambda: Worker.objects.get().last_seen_at > first_seen, what="a second beat")
    finally:
        assert worker.terminate() == 0
    assert not Worker.objects.exists()


def test_a_killed_worker_stays_registered_until_its_beats_age(tmp_path):
    worker = WorkerProcess(tmp_path / "w.log")
    wait_until(lambda: Worker.objects.exists(), what="the worker to register")
    worker.kill()
    # The row stays; the overview tells it apart from a live worker by its last beat.
    assert Worker.objects.get().pid == worker.process.pid
