"""Pruning in real processes: a prune_runs killed mid-batch, workers pruning beside a drain
(tests/integration/test_retention.py has the in-process cases)."""

import signal
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_durable import RunStatus
from django_durable.models import Run, Step
from tests.integration.test_retention import old_families, orphans, prune
from tests.testapp import jobs
from tests.workers import ROOT, LoggedProcess, WorkerProcess, process_env, wait_until

pytestmark = pytest.mark.django_db


def manage_py(log_path, *args):
    command = [sys.executable, "-m", "django", *args]
    return LoggedProcess(log_path, command, cwd=ROOT, env=process_env())


@pytest.mark.django_db(transaction=True)
def test_a_prune_killed_mid_batch_leaves_whole_families_and_the_next_finishes(tmp_path):
    total = old_families(1500)
    prune_run = manage_py(tmp_path / "prune.log", "prune_runs", "--batch-size", "20")
    try:
        wait_until(lambda: Run.objects.count() < total - 300, what="pruning to start")
        prune_run.process.send_signal(signal.SIGKILL)
    finally:
        prune_run.kill()
    left = Run.objects.count()
    assert 0 < left < total and left % 3 == 0  # families of three, never part of one
    assert all(count == 0 for count in orphans().values())
    assert Run.objects.filter(parent_id=None).count() * 3 == left
    assert prune().startswith(f"Deleted {left} runs ({left * 3} journal entries, {left} log")
    assert Run.objects.count() == 0 and Step.objects.count() == 0


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="one writer at a time: SKIP LOCKED is for servers"
)
@pytest.mark.django_db(transaction=True)
def test_two_workers_prune_while_a_third_drains_new_runs(tmp_path):
    total = old_families(600)
    pruners = [
        WorkerProcess(
            tmp_path / f"pruner-{i}.log",
            "--queue",
            "nothing-here",
            DURABLE_TEST_PRUNE_INTERVAL="0.2",
        )
        for i in range(2)
    ]
    drainer = WorkerProcess(tmp_path / "drainer.log", "--concurrency", "4")
    fresh = []
    try:
        deadline = time.monotonic() + 60
        while Run.objects.filter(finished_at__lt=timezone.now() - timedelta(days=1)).exists():
            assert time.monotonic() < deadline, "pruning did not finish in 60 s"
            fresh.append(jobs.fan_out.enqueue([1, 2]).id)
            time.sleep(0.1)
        wait_until(
            lambda: (
                Run.objects.filter(pk__in=fresh, status=RunStatus.COMPLETED).count() == len(fresh)
            ),
            timeout=90,
            what="every new run to complete",
        )
    finally:
        for worker in [*pruners, drainer]:
            worker.terminate()
            print(worker.log_path.name, worker.output[-3000:])  # shown if the test fails
    assert Run.objects.filter(parent_id=None).count() == len(fresh)
    assert Run.objects.count() == 3 * len(fresh)  # every new family intact
    assert all(count == 0 for count in orphans().values())
    # The drainer prunes too (its first pass comes at start-up): count every log.
    logs = [worker.output for worker in [*pruners, drainer]]
    pruned = sum(
        int(part.split("=")[1])
        for log in logs
        for line in log.splitlines()
        if "event=pruned" in line
        for part in line.split()
        if part.startswith("runs=")
    )
    assert pruned == total  # each family deleted once, by one of the workers
    assert "Traceback" not in "".join(logs)
    assert len(fresh) > 5  # the drain really ran beside the pruning
