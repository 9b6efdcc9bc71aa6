from datetime import timedelta

import pytest

from django_durable import RetryPolicy


def test_delays_grow_exponentially_and_are_capped():
    policy = RetryPolicy(
        max_attempts=10,
        initial_delay=timedelta(seconds=1),
        backoff_factor=3,
        max_delay=timedelta(seconds=20),
        jitter=0,
    )
    assert [policy.delay(n).total_seconds() for n in (1, 2, 3, 4)] == [1, 3, 9, 20]


def test_jitter_spreads_delays_within_bounds():
    policy = RetryPolicy(initial_delay=timedelta(seconds=10), jitter=0.5)
    delays = {policy.delay(1).total_seconds() for _ in range(50)}
    assert all(5 <= d <= 15 for d in delays)
    assert len(delays) > 1


def test_should_retry_respects_attempts_and_exception_types():
    policy = RetryPolicy(max_attempts=3, retry_on=ConnectionError)
    assert policy.retry_on == (ConnectionError,)
    assert policy.should_retry(1, ConnectionError())
    assert policy.should_retry(2, ConnectionError())
    assert not policy.should_retry(3, ConnectionError())
    assert not policy.should_retry(1, ValueError())


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"backoff_factor": 0.5}, {"jitter": 2}])
def test_invalid_policies_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)
