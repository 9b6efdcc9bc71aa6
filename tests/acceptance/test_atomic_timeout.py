"""ATOMIC_STEP_TIMEOUT: an atomic step that holds its transaction longer fails clearly.

On every database the worker checks the time when the step's function returns; on
PostgreSQL and MariaDB the database also cancels a statement that runs longer (and ends
an idle transaction, tests/acceptance/test_atomic_frozen.py), so the limit holds inside one query.
"""

import pytest
from django.db import connection

from django_durable import RunStatus
from django_durable.models import Run, Step
from tests.testapp import atomic_jobs
from tests.testapp.models import Account
from tests.workers import WorkerProcess

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 1.0


def drain(tmp_path):
    worker = WorkerProcess(
        tmp_path / "worker.log", "--burst", DURABLE_TEST_ATOMIC_STEP_TIMEOUT=str(TIMEOUT)
    )
    assert worker.wait(60) == 0, worker.output
    return worker.output


def assert_timed_out(handle):
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.FAILED
    error = run.errors[-1]
    assert error["type"] == "django_durable.exceptions.StepFailed"
    assert "AtomicStepTimeout" in error["message"]
    assert "DURABLE['ATOMIC_STEP_TIMEOUT'] (1s)" in error["message"]
    assert "keep atomic steps short" in error["message"]
    # Rolled back: the step's own write did not land.
    assert not Account.objects.filter(owner=str(handle.id)).exists()
    return Step.objects.get(run_id=handle.id, name="slow")


def test_a_step_longer_than_the_limit_is_rolled_back_with_a_clear_error(tmp_path):
    handle = atomic_jobs.overruns.enqueue(TIMEOUT + 0.5)
    drain(tmp_path)
    assert_timed_out(handle)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no statement limit")
def test_the_database_cancels_a_query_longer_than_the_limit(tmp_path):
    handle = atomic_jobs.overruns.enqueue(10, sleep_in_database=True)
    drain(tmp_path)
    step = assert_timed_out(handle)
    # Cancelled by the database at the limit, not after the query's 10 s.
    assert (step.finished_at - step.started_at).total_seconds() < 5
