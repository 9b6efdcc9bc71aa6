"""Mistakes refused where they are written, before any database is involved: bad timeouts,
retry policies, run_after values, malformed run ids, missing jobs
(tests/integration/test_mistakes.py has the ones that reach the database)."""

from datetime import UTC, datetime, timedelta

import pytest

from django_durable import (
    InvalidRunId,
    JobNotRegistered,
    RetryPolicy,
    get_job,
    get_run,
    job,
)
from django_durable.worker import Worker
from tests.integration.test_mistakes import seconds_timeout


def _registered():
    from django_durable import registered_jobs

    return registered_jobs()


def test_a_timeout_in_seconds_is_a_timedelta_and_the_worker_starts():
    assert seconds_timeout.timeout == timedelta(seconds=30)
    worker = Worker(jobs={seconds_timeout.name: seconds_timeout})
    assert worker._timeouts == {seconds_timeout.name: 30.0}


@pytest.mark.parametrize("bad", ["30", True, object(), [30]])
def test_a_timeout_of_the_wrong_type_fails_at_decoration(bad):
    def sample(ctx):
        return None

    with pytest.raises(TypeError, match=r"timeout must be a timedelta or a number of seconds"):
        job(name="tests.mistakes.bad_timeout", timeout=bad)(sample)
    assert "tests.mistakes.bad_timeout" not in _registered()


@pytest.mark.parametrize("bad", [-1, 0, timedelta(seconds=-5), float("nan")])
def test_a_timeout_that_is_not_positive_fails_at_decoration(bad):
    with pytest.raises(ValueError, match="timeout must be"):
        job(name="tests.mistakes.bad_timeout", timeout=bad)(lambda ctx: None)


def test_retry_policy_delays_take_seconds():
    policy = RetryPolicy(initial_delay=2, max_delay=3.5, jitter=0)
    assert policy.initial_delay == timedelta(seconds=2)
    assert policy.max_delay == timedelta(seconds=3.5)
    assert policy.delay(1) == timedelta(seconds=2)
    assert policy.delay(2) == timedelta(seconds=3.5)  # capped


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"initial_delay": "2"}, TypeError, r"RetryPolicy\.initial_delay must be a timedelta"),
        ({"max_delay": False}, TypeError, r"RetryPolicy\.max_delay must be a timedelta"),
        ({"initial_delay": -1}, ValueError, r"RetryPolicy\.initial_delay must be zero or more"),
        ({"max_attempts": "3"}, TypeError, r"RetryPolicy\.max_attempts must be an int"),
        ({"max_attempts": 2.0}, TypeError, r"RetryPolicy\.max_attempts must be an int"),
        ({"max_attempts": 0}, ValueError, r"RetryPolicy\.max_attempts must be at least 1"),
        ({"backoff_factor": "2"}, TypeError, r"RetryPolicy\.backoff_factor must be a number"),
        ({"jitter": None}, TypeError, r"RetryPolicy\.jitter must be a number"),
        ({"retry_on": "ValueError"}, TypeError, r"RetryPolicy\.retry_on must be an exception"),
        ({"retry_on": (ValueError, 3)}, TypeError, r"RetryPolicy\.retry_on must be an exception"),
        ({"retry_on": ()}, TypeError, r"RetryPolicy\.retry_on must be an exception"),
    ],
)
def test_retry_policy_fields_are_checked_at_construction(options, error, message):
    with pytest.raises(error, match=message):
        RetryPolicy(**options)


def test_retry_on_takes_one_class_or_a_list():
    assert RetryPolicy(retry_on=KeyError).retry_on == (KeyError,)
    assert RetryPolicy(retry_on=[KeyError, OSError]).retry_on == (KeyError, OSError)


def test_retry_must_be_a_retry_policy():
    with pytest.raises(TypeError, match="retry must be a RetryPolicy"):
        job(name="tests.mistakes.bad_retry", retry=3)(lambda ctx: None)


def test_run_after_takes_a_datetime_a_timedelta_or_seconds():
    assert seconds_timeout.using(run_after=5).run_after == timedelta(seconds=5)
    assert seconds_timeout.using(run_after=timedelta(minutes=1)).run_after == timedelta(minutes=1)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert seconds_timeout.using(run_after=when).run_after == when
    with pytest.raises(TypeError, match="run_after must be a timezone-aware datetime, a"):
        seconds_timeout.using(run_after="5")
    with pytest.raises(ValueError, match="run_after must be a timezone-aware datetime"):
        seconds_timeout.using(run_after=datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="run_after must be zero or more"):
        seconds_timeout.using(run_after=-5)


def test_other_operations_name_a_malformed_run_id():
    with pytest.raises(InvalidRunId, match="'123' is not a run id"):
        get_run("123")


def test_get_job_names_both_reasons_a_job_is_missing():
    with pytest.raises(JobNotRegistered) as raised:
        get_job("billing.workflows.charge")
    message = str(raised.value)
    assert "not deployed here" in message
    assert "an installed app's jobs.py is autodiscovered" in message
    assert "billing/workflows.py" in message
