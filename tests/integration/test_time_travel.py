"""``time_travel()``: long sleeps, event timeouts, backoffs and delays tested at once."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_durable import EventTimeout, RetryPolicy, RunStatus, get_run, job, send_event
from django_durable.models import Run
from django_durable.storage import get_storage
from django_durable.testing import InMemoryStorage, run_until_idle, time_travel, use_storage

pytestmark = pytest.mark.django_db

FLAKY = {"failures_left": 0}


@job(name="tests.time_travel.onboarding")
def onboarding(ctx, user):
    ctx.step("welcome", lambda: f"hello {user}")
    ctx.sleep("grace-period", timedelta(days=3))
    try:
        answer = ctx.wait_for_event("confirmed", timeout=timedelta(days=7))
    except EventTimeout:
        answer = "timed out"
    ctx.step("finish", lambda: answer)
    return answer


@job(name="tests.time_travel.backoff")
def backoff(ctx):
    def call():
        if FLAKY["failures_left"]:
            FLAKY["failures_left"] -= 1
            raise ConnectionError("provider down")
        return "sent"

    # An hour's backoff is longer than STEP_RETRY_SLEEP_LIMIT: the run parks for it.
    policy = RetryPolicy(
        max_attempts=3, initial_delay=timedelta(hours=1), max_delay=timedelta(hours=1), jitter=0
    )
    return ctx.step("send", call, retry=policy)


@job(
    name="tests.time_travel.run_retry",
    retry=RetryPolicy(
        max_attempts=2, initial_delay=timedelta(hours=6), max_delay=timedelta(hours=6), jitter=0
    ),
)
def run_retry(ctx):
    if FLAKY["failures_left"]:
        FLAKY["failures_left"] -= 1
        raise ConnectionError("provider down")
    return ctx.attempt


def status(handle):
    return get_run(handle.id).status


def test_a_three_day_sleep_and_a_seven_day_timeout_pass_at_once():
    began = time.monotonic()
    with time_travel() as clock:
        handle = onboarding.enqueue(user="ada")
        run_until_idle()
        assert status(handle) == RunStatus.WAITING
        clock.advance(timedelta(days=2, hours=23))
        assert run_until_idle() == 0  # not yet three days
        clock.advance(timedelta(hours=1))
        run_until_idle()
        assert status(handle) == RunStatus.WAITING  # now waiting for the event
        clock.advance(timedelta(days=7))
        run_until_idle()
    finished = get_run(handle.id)
    assert finished.status == RunStatus.COMPLETED, finished.errors
    assert finished.output == "timed out"
    # Ten days in, well under the few seconds a test may take (the figure is in the docs).
    assert time.monotonic() - began < 10


def test_an_event_before_the_timeout_is_taken():
    with time_travel() as clock:
        handle = onboarding.enqueue(user="bob")
        run_until_idle()
        clock.advance(timedelta(days=3))
        run_until_idle()
        clock.advance(timedelta(days=6))  # a day before the timeout
        send_event(handle.id, "confirmed", "yes")
        run_until_idle()
    assert get_run(handle.id).output == "yes"


def test_the_database_clock_of_other_code_is_not_moved():
    storage = get_storage()
    with time_travel() as clock:
        handle = onboarding.enqueue(user="cy")
        run_until_idle()
        clock.advance(timedelta(days=30))
        assert clock.offset == timedelta(days=30)
        assert abs(storage.now() - timezone.now()) < timedelta(minutes=1)
    # Outside the block nothing is shifted: the run waits for a real week for its event.
    run_until_idle()
    assert status(handle) == RunStatus.WAITING
    assert run_until_idle() == 0


def test_a_parked_retry_backoff_and_a_run_after_delay_pass():
    FLAKY["failures_left"] = 1
    with time_travel() as clock:
        retrying = backoff.enqueue()
        later = onboarding.using(run_after=timedelta(days=1)).enqueue(user="dee")
        run_until_idle()
        assert status(retrying) == RunStatus.WAITING
        assert get_run(later.id).started_at is None  # delayed by a day
        clock.advance(timedelta(minutes=59))
        assert run_until_idle() == 0
        clock.advance(timedelta(days=1))
        run_until_idle()
    assert get_run(retrying.id).output == "sent"
    # Started, and now in its grace period.
    assert get_run(later.id).started_at is not None
    assert status(later) == RunStatus.WAITING


def test_a_run_level_retry_backoff_passes():
    FLAKY["failures_left"] = 1
    with time_travel() as clock:
        handle = run_retry.enqueue()
        run_until_idle()
        assert status(handle) == RunStatus.WAITING  # attempt 2 in six hours
        clock.advance(timedelta(hours=5))
        assert run_until_idle() == 0
        clock.advance(timedelta(hours=1))
        run_until_idle()
    assert get_run(handle.id).output == 2


def test_a_run_already_due_keeps_its_place_in_the_claim_order():
    with time_travel() as clock:
        first = onboarding.enqueue(user="eve")
        second = onboarding.enqueue(user="fay")
        before = dict(Run.objects.values_list("pk", "run_after"))
        clock.advance(timedelta(hours=1))
        assert dict(Run.objects.values_list("pk", "run_after")) == before
        run_until_idle(max_runs=1)
    assert get_run(first.id).started_at is not None
    assert get_run(second.id).started_at is None


def test_advance_refuses_going_back_and_non_durations():
    with time_travel() as clock:
        with pytest.raises(ValueError, match=r"clock\.advance"):
            clock.advance(-1)
        with pytest.raises(TypeError, match=r"clock\.advance"):
            clock.advance("a day")


def test_the_in_memory_storage_travels_with_its_own_clock():
    with use_storage(InMemoryStorage()) as memory, time_travel() as clock:
        handle = onboarding.enqueue(user="eve")
        run_until_idle()
        clock.advance(timedelta(days=3))
        run_until_idle()
        # The wait began three days in: its timeout is seven days after that.
        clock.advance(timedelta(days=6))
        run_until_idle()
        assert memory.get_run(handle.id).status == RunStatus.WAITING
        clock.advance(timedelta(days=1))
        run_until_idle()
        assert memory.get_run(handle.id).output == "timed out"
