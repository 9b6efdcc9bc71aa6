"""The engine in-process on each database: the scenarios of tests/scenarios/engine.py, and
what only a database shows: replay from its tables, atomic steps, fencing, journal-write
failures."""

import uuid

import pytest

from django_durable import RunStatus, get_run, job
from django_durable.context import RunContext
from django_durable.exceptions import LeaseLost
from django_durable.journal import Journal
from django_durable.models import Run, RunLog, Step
from django_durable.runner import execute_run
from django_durable.storage import get_storage
from django_durable.storage.base import Checkpoint
from django_durable.testing import run_until_idle
from tests.scenarios.engine import EngineScenarios
from tests.testapp import jobs
from tests.testapp.models import Account, Execution

pytestmark = pytest.mark.django_db


class TestEngineOnTheDatabase(EngineScenarios):
    @pytest.fixture(autouse=True)
    def storage(self):
        return get_storage()

    def logged(self, run_id):
        return list(
            RunLog.objects.filter(run_id=run_id).order_by("id").values_list("level", "message")
        )


def counts(run_id):
    return {
        name: Execution.objects.filter(run_id=run_id, step=name).count()
        for name in ("step-1", "step-2", "step-3")
    }


def test_run_completes_with_its_journal():
    handle = jobs.three_steps.enqueue()
    assert run_until_idle() == 1
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED
    assert handle.output == ["step-1", "step-2", "step-3"]
    assert list(
        Step.objects.filter(run_id=handle.id).values_list("position", "name", "status")
    ) == [
        (0, "step-1", "completed"),
        (1, "step-2", "completed"),
        (2, "step-3", "completed"),
    ]
    assert counts(handle.id) == {"step-1": 1, "step-2": 1, "step-3": 1}


def test_failed_attempt_resumes_at_the_failed_step():
    handle = jobs.fails_in_step_3_once.enqueue()
    assert run_until_idle() == 2  # attempt 1 fails in step 3, attempt 2 completes
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.attempt == 2
    assert counts(handle.id) == {"step-1": 1, "step-2": 1, "step-3": 2}
    (error,) = handle.errors
    assert error["attempt"] == 1
    assert error["type"] == "django_durable.exceptions.StepFailed"
    assert "ConnectionError: the service is down" in error["traceback"]
    step_3 = Step.objects.get(run_id=handle.id, position=2)
    assert (step_3.status, step_3.run_attempt) == ("completed", 2)


def test_step_level_retry_happens_inside_one_attempt():
    calls = []

    @job(name="tests.step_retry")
    def step_retry(ctx):
        def flaky():
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError("again")
            return "ok"

        return ctx.step("flaky", flaky, retry=jobs.NO_DELAY_RETRY)

    handle = step_retry.enqueue()
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.attempt == 1
    assert Step.objects.get(run_id=handle.id).attempts == 3


def test_atomic_step_that_raises_leaves_no_writes_and_no_checkpoint():
    handle = jobs.atomic_then_raise.enqueue("alice")
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.FAILED
    assert not Account.objects.filter(owner="alice").exists()
    assert not Step.objects.filter(run_id=handle.id, status="completed").exists()
    failed = Step.objects.get(run_id=handle.id)
    assert failed.status == "failed" and failed.error["message"] == "refused after writing"


def test_atomic_step_commits_its_writes_with_the_checkpoint():
    handle = jobs.atomic_ok.enqueue("bob")
    run_until_idle()
    handle.refresh()
    account = Account.objects.get(owner="bob")
    assert handle.status == RunStatus.COMPLETED and handle.output == account.pk
    assert Step.objects.get(run_id=handle.id).result == account.pk


def test_atomic_step_of_a_lost_lease_writes_nothing():
    jobs.atomic_ok.enqueue("carol")
    storage = get_storage()
    (claimed,) = storage.claim(owner="w", job_names=["tests.atomic_ok"], queues=None, limit=1)
    Run.objects.filter(pk=claimed.run.id).update(lease_token=uuid.uuid4())  # another worker took it
    assert execute_run(storage, claimed, jobs.atomic_ok) is None
    assert not Account.objects.filter(owner="carol").exists()
    assert not Step.objects.filter(run_id=claimed.run.id).exists()


def test_a_replayed_run_does_not_rerun_committed_steps():
    handle = jobs.three_steps.enqueue()
    storage = get_storage()
    (claimed,) = storage.claim(owner="w", job_names=["tests.three_steps"], queues=None, limit=1)
    # Simulate a worker that journaled step 1 and then died, then release the run.
    journal = Journal(storage, claimed, [])
    RunContext(journal).step("step-1", lambda: "step-1")
    journal.flush()
    storage.release(claimed.lease, journal.take_pending())
    run_until_idle()
    assert get_run(handle.id).status == RunStatus.COMPLETED
    assert counts(handle.id) == {"step-1": 0, "step-2": 1, "step-3": 1}


def test_writes_after_losing_the_lease_raise_lease_lost():
    jobs.echo.enqueue()
    storage = get_storage()
    (claimed,) = storage.claim(owner="w", job_names=["tests.echo"], queues=None, limit=1)
    Run.objects.filter(pk=claimed.run.id).update(lease_token=uuid.uuid4())
    ctx = RunContext(Journal(storage, claimed, []))
    ctx.step("one", lambda: 1)
    with pytest.raises(LeaseLost):
        ctx.step("two", lambda: 2)  # flushing step one's checkpoint is fenced out


def test_logs_and_progress_inside_an_atomic_step_are_kept():
    @job(name="tests.atomic_logs")
    def atomic_logs(ctx):
        def body():
            ctx.log.info("inside the transaction")
            ctx.progress(1, 2, "half")
            return Account.objects.create(owner="erin").pk

        return ctx.step("open", body, atomic=True)

    handle = atomic_logs.enqueue()
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED
    assert handle.progress == {"done": 1, "total": 2, "message": "half"}
    assert list(RunLog.objects.filter(run_id=handle.id).values_list("message", flat=True)) == [
        "inside the transaction"
    ]


def test_a_failing_journal_write_abandons_the_run_instead_of_failing_it():
    from django.db import OperationalError

    from django_durable.storage import storage_class

    class DatabaseGoesAway(storage_class("default")):
        def checkpoint(self, lease, checkpoint):
            self._fenced.write = self._broken  # the next fenced write fails
            return super().checkpoint(lease, checkpoint)

        def _broken(self, *args):
            raise OperationalError("server closed the connection unexpectedly")

    handle = jobs.three_steps.enqueue()
    storage = DatabaseGoesAway()
    (claimed,) = storage.claim(owner="w", job_names=["tests.three_steps"], queues=None, limit=1)
    assert execute_run(storage, claimed, jobs.three_steps) is None
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.RUNNING and run.errors == []  # left for recovery
    assert not Step.objects.filter(run_id=handle.id).exists()
    get_storage().release(claimed.lease, Checkpoint())  # as recovery would
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.errors == []
    assert counts(handle.id) == {"step-1": 2, "step-2": 1, "step-3": 1}
