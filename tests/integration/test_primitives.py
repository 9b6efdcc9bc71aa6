"""Durable sleep, events and child runs, in-process on every database."""

import time
from datetime import timedelta

import pytest

from django_durable import RetryPolicy, RunNotFound, RunStatus, job, send_event
from django_durable.models import Run, RunEvent, Step
from django_durable.testing import run_until_idle
from tests.testapp import jobs
from tests.testapp.jobs import executions

pytestmark = pytest.mark.django_db


def journal(run_id):
    steps = Step.objects.filter(run_id=run_id).order_by("position")
    return list(steps.values_list("kind", "name", "status"))


def status(run_id):
    return Run.objects.get(pk=run_id).status


def test_sleep_parks_the_run_and_resumes_after_its_time():
    handle = jobs.sleeper.enqueue(0.5)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.WAITING and run.lease_token is None
    assert run.wake_at is not None
    assert journal(handle.id)[-1] == ("sleep", "nap", "waiting")
    run_until_idle()  # too early: nothing to do
    assert status(handle.id) == RunStatus.WAITING
    time.sleep(0.7)
    run_until_idle()
    assert status(handle.id) == RunStatus.COMPLETED
    assert journal(handle.id) == [
        ("step", "before", "completed"),
        ("sleep", "nap", "completed"),
        ("step", "after", "completed"),
    ]
    assert executions(handle.id, "before") == 1 and executions(handle.id, "after") == 1


def test_a_sleep_that_already_passed_does_not_park():
    handle = jobs.sleeper.enqueue(0)
    run_until_idle()
    assert status(handle.id) == RunStatus.COMPLETED


def test_an_event_sent_before_the_wait_is_kept_and_delivered():
    handle = jobs.approval.enqueue()
    send_event(handle.id, "approval", {"by": "ops"})
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == {"by": "ops"}
    assert RunEvent.objects.get(run_id=handle.id).consumed_at is not None


def test_an_event_wakes_a_waiting_run():
    handle = jobs.approval.enqueue()
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.WAITING and run.waiting_for == {"event": "approval"}
    assert run.wake_at is None  # no timeout: no timer
    send_event(handle.id, "approval", "yes")
    assert status(handle.id) == RunStatus.PENDING  # woken at once
    run_until_idle()
    handle.refresh()
    assert handle.output == "yes"
    assert executions(handle.id, "before") == 1 and executions(handle.id, "after") == 1


def test_an_event_of_another_name_does_not_wake_the_run():
    handle = jobs.approval.enqueue()
    run_until_idle()
    send_event(handle.id, "other", 1)
    assert status(handle.id) == RunStatus.WAITING


def test_each_wait_consumes_one_event_in_order_of_arrival():
    handle = jobs.two_events.enqueue()
    for item in ("first", "second", "third"):
        send_event(handle.id, "item", item)
    run_until_idle()
    handle.refresh()
    assert handle.output == ["first", "second"]
    assert RunEvent.objects.filter(run_id=handle.id, consumed_at__isnull=True).count() == 1


def test_a_wait_times_out_with_event_timeout_inside_the_job():
    handle = jobs.approval.enqueue(timeout=0.4)
    run_until_idle()
    assert status(handle.id) == RunStatus.WAITING
    time.sleep(0.6)
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == "timed out"
    send_event_after = Run.objects.get(pk=handle.id)
    assert send_event_after.waiting_for is None


def test_sending_to_a_finished_or_unknown_run_or_a_bad_payload_is_refused():
    handle = jobs.echo.enqueue()
    with pytest.raises(TypeError, match=r"event 'x' is a builtins\.object"):
        send_event(handle.id, "x", object())
    run_until_idle()
    with pytest.raises(ValueError, match="is completed; events can only be sent to unfinished"):
        send_event(handle.id, "x", 1)
    with pytest.raises(RunNotFound):
        send_event("018f0000-0000-7000-8000-000000000000", "x", 1)
    assert not RunEvent.objects.exists()


def test_children_fan_out_and_in():
    handle = jobs.fan_out.enqueue([1, 2, 3])
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == 14
    children = Run.objects.filter(parent_id=handle.id)
    assert children.count() == 3
    assert set(children.values_list("status", flat=True)) == {"completed"}
    assert executions(handle.id, "started") == 1
    kinds = [kind for kind, _, _ in journal(handle.id)]
    assert kinds == ["children", "step", "wait_children"]


def test_a_failed_child_raises_child_run_failed_in_the_parent():
    handle = jobs.fan_out.enqueue([2, -1])
    run_until_idle()
    handle.refresh()
    failed_child = Run.objects.get(parent_id=handle.id, status="failed")
    assert handle.status == RunStatus.COMPLETED
    assert handle.output == {"failed": [str(failed_child.id)]}


def test_a_child_with_its_parents_concurrency_key_is_refused():
    handle = jobs.same_key_child.using(concurrency_key="k").enqueue()
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.FAILED
    assert "cannot share its concurrency key 'k'" in handle.error["message"]
    assert not Run.objects.filter(parent_id=handle.id).exists()


def test_a_parent_with_500_children():
    handle = jobs.fan_out.enqueue(list(range(500)))
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED
    assert handle.output == sum(i * i for i in range(500))
    assert Run.objects.filter(parent_id=handle.id).count() == 500


def test_a_long_step_retry_backoff_parks_the_run_instead_of_holding_the_worker(settings):
    settings.DURABLE = {**settings.DURABLE, "STEP_RETRY_SLEEP_LIMIT": 0.1}
    calls = []

    @job(name="tests.slow_retry")
    def slow_retry(ctx):
        def flaky():
            calls.append(1)
            if len(calls) == 1:
                raise ConnectionError("try later")
            return "ok"

        policy = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=0.5), jitter=0)
        return ctx.step("call", flaky, retry=policy)

    handle = slow_retry.enqueue()
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.WAITING and run.wake_at is not None
    step = Step.objects.get(run_id=handle.id)
    assert (step.status, step.attempts) == ("waiting", 1)
    assert step.error["type"] == "builtins.ConnectionError"
    time.sleep(0.7)
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == "ok"
    assert handle.attempt == 1  # step retries stay inside the run's attempt
    step.refresh_from_db()
    assert (step.status, step.attempts) == ("completed", 2) and len(calls) == 2
