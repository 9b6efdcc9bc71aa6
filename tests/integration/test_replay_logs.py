"""ctx.log is replay-aware: the stored log of a run reads as one execution."""

import logging
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from django_durable import RetryPolicy, RunStatus, get_run, job, send_event
from django_durable.exceptions import WorkerStopping
from django_durable.models import Run, RunLog
from django_durable.runner import execute_run
from django_durable.storage import get_storage
from django_durable.testing import run_until_idle

pytestmark = pytest.mark.django_db


def drive(handle, timeout=30.0):
    """Run the run (and its wake-ups, by the database clock) until it finished."""
    deadline = time.monotonic() + timeout
    while not get_run(handle.id).is_finished:
        assert time.monotonic() < deadline, f"run still {get_run(handle.id).status}"
        if not run_until_idle():
            time.sleep(0.05)
    return get_run(handle.id)


def stored(handle):
    return list(
        RunLog.objects.filter(run_id=handle.id).order_by("id").values_list("attempt", "message")
    )


@job(name="tests.replay_logs.sleeps_twice")
def sleeps_twice(ctx, amount):
    ctx.log.info("starting")
    ctx.step("reserve", lambda: ctx.log.info("inside reserve"))
    ctx.log.info("charged %s EUR", amount)
    ctx.sleep("first nap", 0.2)
    ctx.log.info("after the first nap")
    ctx.step("ship", lambda: None)
    ctx.sleep("second nap", timedelta(seconds=0.2))
    ctx.log.info("done")
    return "shipped"


def test_a_job_that_logs_between_steps_and_sleeps_twice_stores_each_line_once(caplog):
    handle = sleeps_twice.enqueue("129.00")
    with caplog.at_level(logging.INFO, logger="django_durable.job"):
        run = drive(handle)
    assert (run.status, run.output) == (RunStatus.COMPLETED, "shipped")
    assert stored(handle) == [
        (1, "starting"),
        (1, "inside reserve"),
        (1, "charged 129.00 EUR"),
        (1, "after the first nap"),
        (1, "done"),
    ]
    # Python logging still sees every record, the replayed ones marked as such.
    seen = Counter(
        (r.getMessage(), r.replayed) for r in caplog.records if r.name.endswith(sleeps_twice.name)
    )
    assert seen[("charged 129.00 EUR", False)] == 1
    assert seen[("charged 129.00 EUR", True)] == 2  # replayed after each nap
    assert seen[("after the first nap", True)] == 1
    assert all(r.run_id == str(handle.id) for r in caplog.records if hasattr(r, "replayed"))


@job(name="tests.replay_logs.waits_for_approval")
def waits_for_approval(ctx):
    ctx.log.info("asked for approval")
    approved = ctx.wait_for_event("approval")
    ctx.log.info("approved by %s", approved["by"])
    return approved


def test_logs_before_an_event_wait_are_stored_once():
    handle = waits_for_approval.enqueue()
    run_until_idle()
    assert get_run(handle.id).status == RunStatus.WAITING
    send_event(handle.id, "approval", {"by": "ann"})
    drive(handle)
    assert stored(handle) == [(1, "asked for approval"), (1, "approved by ann")]


def fails_on_first_attempt(ctx):
    def flaky():
        if ctx.attempt == 1:
            raise RuntimeError("not yet")
        return "ok"

    return flaky


@job(
    name="tests.replay_logs.failed_step_resumed",
    retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
)
def failed_step_resumed(ctx):
    ctx.log.info("before")
    ctx.step("one", lambda: 1)
    ctx.log.info("between")
    ctx.step("flaky", fails_on_first_attempt(ctx))
    ctx.log.info("after")


def test_a_new_attempt_resuming_a_failed_step_does_not_store_the_logs_before_it_again():
    handle = failed_step_resumed.enqueue()
    run = drive(handle)
    assert (run.status, run.attempt) == (RunStatus.COMPLETED, 2)
    assert stored(handle) == [(1, "before"), (1, "between"), (2, "after")]


_calls: Counter = Counter()


@job(name="tests.replay_logs.step_retry_waits")
def step_retry_waits(ctx):
    def flaky():
        _calls[ctx.run_id] += 1
        if _calls[ctx.run_id] == 1:
            raise RuntimeError("busy")
        ctx.log.info("inside, second try")

    ctx.log.info("before")
    ctx.step("flaky", flaky, retry=RetryPolicy(max_attempts=2, initial_delay=0.2, jitter=0))
    ctx.log.info("after")


@override_settings(DURABLE={"STEP_RETRY_SLEEP_LIMIT": 0.01})
def test_a_step_retry_the_run_waited_for_stores_each_line_once():
    handle = step_retry_waits.enqueue()
    run_until_idle()
    assert get_run(handle.id).status == RunStatus.WAITING  # the retry is a durable timer
    drive(handle)
    messages = [message for _, message in stored(handle)]
    assert messages[0] == "before"
    assert messages[1].startswith("step 'flaky' attempt 1 failed (builtins.RuntimeError: busy)")
    assert messages[2:] == ["inside, second try", "after"]


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
