"""ctx.log is replay-aware: the stored log of a run reads as one execution. The scenarios
of tests/scenarios/replay_logs.py on each database, and what only a database shows: a
run recovered after its worker died, a run released at shutdown."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_durable import RunStatus, get_run, job
from django_durable.exceptions import WorkerStopping
from django_durable.models import Run, RunLog
from django_durable.runner import execute_run
from django_durable.storage import get_storage
from django_durable.testing import run_until_idle
from tests.scenarios.replay_logs import ReplayLogScenarios

pytestmark = pytest.mark.django_db


def drive(handle, timeout=30.0):
    """Run the run (and its wake-ups, by the database clock) until it finished."""
    deadline = time.monotonic() + timeout
    while not get_run(handle.id).is_finished:
        assert time.monotonic() < deadline, f"run still {get_run(handle.id).status}"
        if not run_until_idle():
            time.sleep(0.05)
    return get_run(handle.id)


class TestReplayLogsOnTheDatabase(ReplayLogScenarios):
    @pytest.fixture(autouse=True)
    def storage(self):
        return get_storage()

    def stored(self, handle):
        return stored(handle)


def stored(handle):
    return list(
        RunLog.objects.filter(run_id=handle.id).order_by("id").values_list("attempt", "message")
    )


class Crash(BaseException):
    """The worker process dies here: nothing after it is written."""


_crashed: set = set()


@job(name="tests.replay_logs.crashes_after_a_nap")
def crashes_after_a_nap(ctx):
    def ship():
        if ctx.run_id not in _crashed:
            _crashed.add(ctx.run_id)
            raise Crash

    ctx.log.info("a")
    ctx.step("one", lambda: None)
    ctx.log.info("b")
    ctx.sleep("nap", 0.1)
    ctx.step("ship", ship)
    ctx.log.info("c")


def test_a_run_recovered_after_its_worker_died_does_not_store_replayed_logs_again():
    handle = crashes_after_a_nap.enqueue()
    run_until_idle()
    time.sleep(0.15)
    with pytest.raises(Crash):
        run_until_idle()
    assert Run.objects.get(pk=handle.id).status == RunStatus.RUNNING  # left behind
    Run.objects.filter(pk=handle.id).update(lease_expires_at=timezone.now() - timedelta(hours=1))
    assert get_storage().recover_stale(max_recoveries=5, limit=10).requeued == [handle.id]
    run = drive(handle)
    assert (run.status, Run.objects.get(pk=handle.id).recoveries) == (RunStatus.COMPLETED, 1)
    assert stored(handle) == [(1, "a"), (1, "b"), (1, "c")]


ONE_RAN: list[bool] = []


@job(name="tests.replay_logs.stopped_between_steps")
def stopped_between_steps(ctx):
    ctx.log.info("start")
    ctx.step("one", lambda: ONE_RAN.append(ctx.log.info("inside one") is None))
    ctx.log.info("between")
    ctx.step("two", lambda: None)
    ctx.log.info("end")


def test_a_run_released_at_shutdown_stores_the_logs_since_its_last_entry_once():
    storage = get_storage()
    handle = stopped_between_steps.enqueue()
    (claimed,) = storage.claim(
        owner="test", job_names=[stopped_between_steps.name], queues=None, limit=1
    )
    ONE_RAN.clear()

    def before_operation():  # the worker stops before step "two"
        if ONE_RAN:
            raise WorkerStopping

    status = execute_run(storage, claimed, stopped_between_steps, before_operation=before_operation)
    assert status == RunStatus.PENDING
    assert stored(handle) == [(1, "start"), (1, "inside one")]
    drive(handle)
    assert stored(handle) == [(1, "start"), (1, "inside one"), (1, "between"), (1, "end")]
