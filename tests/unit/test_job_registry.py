"""The job registry and ``Job.using()``, with no database: names, autodiscovery, refusals
(tests/integration/test_jobs.py has enqueueing and handles, on every database)."""

import pytest

from django_durable import (
    JobNotRegistered,
    get_job,
    job,
    registered_jobs,
)
from tests.testapp.jobs import echo


def test_job_names_default_to_module_and_qualname():
    def sample(ctx):
        return None

    registered = job(sample)
    assert (
        registered.name == "tests.unit.test_job_registry."
        "test_job_names_default_to_module_and_qualname.<locals>.sample"
    )
    assert get_job(registered.name) is registered


def test_autodiscovery_registered_the_test_apps_jobs():
    assert "tests.three_steps" in registered_jobs()


def test_async_jobs_are_registered_and_jobs_without_ctx_are_refused():
    async def later(ctx):
        return None

    assert job(later).is_async
    assert not job(lambda ctx: None).is_async
    with pytest.raises(TypeError, match="run context"):
        job(lambda: None)

    async def no_ctx():
        return None

    with pytest.raises(TypeError, match="run context"):
        job(no_ctx)


def test_two_functions_cannot_share_a_name():
    def one(ctx):
        return 1

    def two(ctx):
        return 2

    job(name="tests.clash")(one)
    with pytest.raises(ValueError, match=r"two jobs are named 'tests\.clash'"):
        job(name="tests.clash")(two)


def test_unknown_job_name_is_a_clear_error():
    with pytest.raises(JobNotRegistered, match="no job named 'nope'"):
        get_job("nope")


@pytest.mark.parametrize(
    "options",
    [{"priority": 101}, {"priority": -101}, {"queue_name": ""}, {"idempotency_key": "x" * 256}],
)
def test_using_validates_options(options):
    with pytest.raises(ValueError):
        echo.using(**options)


def test_using_returns_a_copy_and_leaves_the_registered_job_alone():
    urgent = echo.using(priority=50, queue_name="fast")
    assert (urgent.priority, urgent.queue_name) == (50, "fast")
    assert (echo.priority, echo.queue_name) == (0, "default")
    assert get_job("tests.echo") is echo
