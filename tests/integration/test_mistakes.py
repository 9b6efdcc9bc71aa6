"""Mistakes in using the API raise where they are written, never later in a worker."""

import logging
import uuid

import pytest
from django.test import override_settings

from django_durable import (
    DurableError,
    InvalidEventName,
    InvalidRunId,
    PayloadTooLarge,
    RetryPolicy,
    RunFinished,
    RunNotFound,
    RunStatus,
    get_run,
    job,
    send_event,
)
from django_durable.models import Run, Step
from django_durable.storage import get_storage
from django_durable.storage.base import NewRun
from django_durable.testing import run_until_idle
from django_durable.worker import Worker

# -- durations ------------------------------------------------------------------------


@job(name="tests.mistakes.seconds_timeout", timeout=30)
def seconds_timeout(ctx):
    return ctx.step("only", lambda: "done")


@pytest.mark.django_db
def test_a_job_with_a_timeout_in_seconds_runs():
    handle = seconds_timeout.enqueue()
    assert run_until_idle() == 1
    handle.refresh()
    assert (handle.status, handle.output) == (RunStatus.COMPLETED, "done")
    assert Run.objects.get(pk=handle.id).deadline is not None


@job(
    name="tests.mistakes.retried_in_seconds",
    retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
)
def retried_in_seconds(ctx):
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return ctx.attempt


@pytest.mark.django_db
def test_a_run_level_policy_in_seconds_retries_instead_of_crashing():
    handle = retried_in_seconds.enqueue()
    run_until_idle()
    handle.refresh()
    assert (handle.status, handle.output) == (RunStatus.COMPLETED, 2)
    assert [error["message"] for error in handle.errors] == ["first attempt fails"]


@job(name="tests.mistakes.sleeps_badly")
def sleeps_badly(ctx, delay):
    try:
        ctx.sleep("nap", delay)
    except (TypeError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return "slept"


@job(name="tests.mistakes.waits_badly")
def waits_badly(ctx, timeout):
    try:
        ctx.wait_for_event("approved", timeout=timeout)
    except (TypeError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return "approved"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("delay", "expected"),
    [
        ("5", "TypeError: the delay of ctx.sleep('nap') must be a timedelta or a number"),
        (-1, "ValueError: the delay of ctx.sleep('nap') must be zero or more"),
    ],
)
def test_a_bad_sleep_raises_at_the_call(delay, expected):
    handle = sleeps_badly.enqueue(delay)
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED
    assert handle.output.startswith(expected)
    assert not Step.objects.filter(run_id=handle.id).exists()  # nothing journaled


@pytest.mark.django_db
def test_a_bad_event_timeout_raises_at_the_call():
    handle = waits_badly.enqueue("soon")
    run_until_idle()
    handle.refresh()
    assert handle.output.startswith(
        "TypeError: the timeout of ctx.wait_for_event('approved') must be a timedelta"
    )
    assert not Step.objects.filter(run_id=handle.id).exists()


# -- arguments are checked at enqueue ---------------------------------------------------


@job(name="tests.mistakes.charge")
def charge(ctx, account_id, amount=1):
    return account_id * amount


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"acount_id": 1}, "missing a required argument: 'account_id'"),
        ((1,), {"acount_id": 1}, "got an unexpected keyword argument 'acount_id'"),
        ((), {}, "missing a required argument: 'account_id'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1,), {"account_id": 1}, "multiple values for argument 'account_id'"),
    ],
)
def test_enqueue_with_arguments_the_job_cannot_take_stores_nothing(args, kwargs, message):
    with pytest.raises(TypeError, match=r"tests\.mistakes\.charge\(account_id, amount=1\): "):
        charge.enqueue(*args, **kwargs)
    with pytest.raises(TypeError, match=message):
        charge.enqueue(*args, **kwargs)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_enqueue_with_arguments_the_job_takes_works():
    handle = charge.enqueue(3, amount=2)
    run_until_idle()
    handle.refresh()
    assert handle.output == 6


@job(name="tests.mistakes.parent")
def parent(ctx, many):
    try:
        if many:
            ctx.start_children(charge, [{"account_id": 1}, {"acount_id": 2}])
        else:
            ctx.start_child(charge, acount_id=1)
    except TypeError as error:
        return str(error)
    return "started"


@pytest.mark.django_db
@pytest.mark.parametrize("many", [False, True])
def test_children_with_wrong_arguments_raise_in_the_parent_at_the_call(many):
    handle = parent.enqueue(many)
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED
    assert "missing a required argument: 'account_id'" in handle.output
    assert list(Run.objects.values_list("pk", flat=True)) == [handle.id]  # no child stored


# -- send_event ---------------------------------------------------------------------------


@job(name="tests.mistakes.waits")
def waits(ctx):
    return ctx.wait_for_event("go")


@pytest.mark.django_db
def test_send_event_raises_a_distinct_error_for_each_mistake():
    waiting = waits.enqueue()
    run_until_idle()
    finished = seconds_timeout.enqueue()
    run_until_idle()
    assert get_run(finished.id).status == RunStatus.COMPLETED

    cases = [
        (InvalidRunId, ("not-a-uuid", "go"), "'not-a-uuid' is not a run id"),
        (InvalidEventName, (waiting.id, ""), "non-empty string"),
        (InvalidEventName, (waiting.id, "x" * 256), "at most 255 characters"),
        (InvalidEventName, (waiting.id, 5), "got 5"),
        (RunFinished, (finished.id, "go"), f"run {finished.id} is completed"),
    ]
    for error, args, message in cases:
        with pytest.raises(error, match=message) as raised:
            send_event(*args)
        # Code written for the old bare ValueError keeps catching these.
        assert isinstance(raised.value, ValueError)
        assert isinstance(raised.value, DurableError)
    with (
        override_settings(DURABLE={"MAX_PAYLOAD_BYTES": 100}),
        pytest.raises(PayloadTooLarge, match="over the limit of 100 bytes") as raised,
    ):
        send_event(waiting.id, "go", "x" * 200)
    assert isinstance(raised.value, ValueError)
    with pytest.raises(TypeError, match="is not JSON"):
        send_event(waiting.id, "go", object())
    with pytest.raises(RunNotFound):
        send_event(uuid.uuid4(), "go")
    assert get_run(waiting.id).status == RunStatus.WAITING  # none of those reached it

    send_event(str(waiting.id), "go", {"ok": True})
    run_until_idle()
    assert get_run(waiting.id).output == {"ok": True}


# -- a job this process does not know -----------------------------------------------------


@pytest.mark.django_db
def test_the_worker_hint_names_both_reasons(caplog):
    get_storage().enqueue(
        NewRun(
            job_name="billing.workflows.charge",
            queue_name="default",
            priority=0,
            args=[],
            kwargs={},
        )
    )
    worker = Worker(jobs={charge.name: charge})
    with caplog.at_level(logging.WARNING, logger="django_durable"):
        worker._sweeper.report_unknown_jobs()
    (line,) = [r.getMessage() for r in caplog.records if "job_not_registered" in r.getMessage()]
    assert "job=billing.workflows.charge pending=1" in line
    assert "deploy the code that defines it here" in line
    assert "if it is deployed, have it imported at startup" in line
    assert "jobs.py is autodiscovered" in line


@job(name="tests.mistakes.starts_a_function")
def starts_a_function(ctx):
    try:
        ctx.start_child(charge.func, 1)
    except TypeError as error:
        return str(error)
    return "started"


@pytest.mark.django_db
def test_a_child_must_be_a_job():
    handle = starts_a_function.enqueue()
    run_until_idle()
    assert get_run(handle.id).output.startswith("start a child run of a @job, not <function")
    assert Run.objects.count() == 1
