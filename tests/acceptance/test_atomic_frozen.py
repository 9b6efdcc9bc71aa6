"""A worker frozen inside an atomic step no longer blocks its run (issue 14, item 4).

PostgreSQL ends the frozen worker's transaction ATOMIC_STEP_TIMEOUT after its last
statement (idle_in_transaction_session_timeout, set by the fence), which releases the
run's row; its lease expired meanwhile, since heartbeats leave runs in atomic steps out,
so the next sweep recovers it. The documented bound from the freeze to the recovery is
ATOMIC_STEP_TIMEOUT + STALE_AFTER + POLL_INTERVAL (the sweep interval).
"""

import signal
import time

import pytest
from django.db import connection

from django_durable import RunStatus
from django_durable.models import Run, Step
from tests.testapp import atomic_jobs
from tests.testapp.models import Account
from tests.workers import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL ends idle transactions"
    ),
]

STALE_AFTER = 2.0
ATOMIC_STEP_TIMEOUT = 2.0
POLL_INTERVAL = 0.1  # tests/settings.py
# A fresh worker process takes a moment to start up and make its first sweep.
STARTUP = 4.0


def test_a_worker_frozen_inside_an_atomic_step_is_recovered_and_writes_once(tmp_path):
    marks = str(tmp_path / "marks")
    handle = atomic_jobs.freezes_inside.enqueue(marks, 5.0)
    env = {"DURABLE_TEST_ATOMIC_STEP_TIMEOUT": str(ATOMIC_STEP_TIMEOUT)}
    frozen = WorkerProcess(tmp_path / "frozen.log", stale_after=STALE_AFTER, **env)
    taker = None
    try:
        wait_until(lambda: atomic_jobs.executions(marks), what="the atomic step to start")
        frozen.process.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        taker = WorkerProcess(tmp_path / "taker.log", stale_after=STALE_AFTER, **env)
        bound = ATOMIC_STEP_TIMEOUT + STALE_AFTER + POLL_INTERVAL + STARTUP
        wait_until(
            lambda: Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED,
            timeout=bound + 10,
            what="the taker to complete the run",
        )
        recovered_after = time.monotonic() - stopped
        frozen.process.send_signal(signal.SIGCONT)
        wait_until(
            lambda: "outcome=lease_lost" in frozen.output,
            what="the frozen worker to give the run up",
        )
    finally:
        frozen.process.send_signal(signal.SIGCONT)
        assert frozen.terminate() == 0, frozen.output
        if taker is not None:
            assert taker.terminate() == 0, taker.output
    assert recovered_after < bound, f"recovered after {recovered_after:.1f}s"
    assert f"run={handle.id} event=recovered_stale_lease" in taker.output
    assert [pid for _, _, pid in atomic_jobs.executions(marks, handle.id, "write")] == [
        frozen.process.pid,
        taker.process.pid,
    ]
    # The frozen worker's write was rolled back with its transaction: one row, one entry.
    assert Account.objects.filter(owner=str(handle.id)).count() == 1
    assert Step.objects.filter(run_id=handle.id).count() == 1
    assert Run.objects.get(pk=handle.id).output == "written"
