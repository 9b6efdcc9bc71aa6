"""Edges of the run lifecycle: cancel requests in fenced writes, retries, signals."""

import pytest

from django_durable import RunStatus, cancel_run, retry_run, signals
from django_durable.models import Run, Step
from django_durable.runner import execute_run
from django_durable.storage import get_storage
from django_durable.testing import run_until_idle
from django_durable.testing.factories import RunFactory
from tests.testapp import jobs
from tests.testapp.jobs import executions


def claim(job):
    (claimed,) = get_storage().claim(owner="w", job_names=[job.name], queues=None, limit=1)
    return claimed


@pytest.mark.django_db
def test_a_cancel_request_is_seen_by_the_next_fenced_write():
    handle = jobs.three_steps.enqueue()
    claimed = claim(jobs.three_steps)
    Run.objects.filter(pk=handle.id).update(cancel_requested=True)  # no heartbeat involved
    assert execute_run(get_storage(), claimed, jobs.three_steps) == RunStatus.CANCELLED
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.CANCELLED and run.lease_token is None
    assert executions(handle.id, "step-1") == 1 and executions(handle.id, "step-2") == 0
    # Step 1 ran, so its checkpoint was kept when the run was cancelled.
    assert list(Step.objects.filter(run_id=handle.id).values_list("name", flat=True)) == ["step-1"]


@pytest.mark.django_db
def test_a_cancelled_parent_starts_no_children():
    handle = jobs.fan_out.enqueue([1, 2])
    claimed = claim(jobs.fan_out)
    Run.objects.filter(pk=handle.id).update(cancel_requested=True)
    assert execute_run(get_storage(), claimed, jobs.fan_out) == RunStatus.CANCELLED
    assert not Run.objects.filter(parent_id=handle.id).exists()


@pytest.mark.django_db
def test_a_parent_that_fails_cancels_its_unfinished_children():
    handle = jobs.abandons_children.enqueue()
    run_until_idle(queues=["default"])
    assert Run.objects.get(pk=handle.id).status == RunStatus.FAILED
    statuses = set(Run.objects.filter(parent_id=handle.id).values_list("status", flat=True))
    assert statuses == {"cancelled"}


@pytest.mark.django_db
def test_retry_after_cancel_does_not_cut_a_sleep_short():
    handle = jobs.sleeper.enqueue(3600)
    run_until_idle()
    wake_at = Run.objects.get(pk=handle.id).wake_at
    cancel_run(handle.id)
    retry_run(handle.id)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.WAITING and run.wake_at == wake_at
    assert executions(handle.id, "after") == 0


@pytest.mark.django_db
def test_retry_starts_a_new_deadline_and_recovery_count():
    run = RunFactory(failed=True, recoveries=3, deadline="2020-01-01T00:00:00Z")
    retry_run(run.id)
    run.refresh_from_db()
    assert (run.status, run.recoveries, run.deadline, run.attempt) == ("pending", 0, None, 2)


@pytest.mark.django_db(transaction=True)
def test_signals_for_cancel_run_and_no_step_failed_for_a_wait():
    cancelled, failed_steps = [], []

    def on_cancelled(sender, run, **kwargs):
        cancelled.append(run.id)

    def on_step_failed(sender, run, step, **kwargs):
        failed_steps.append(step.name)

    signals.run_cancelled.connect(on_cancelled)
    signals.step_failed.connect(on_step_failed)
    try:
        sleeping = jobs.sleeper.enqueue(3600)
        run_until_idle()
        cancel_run(sleeping.id)
    finally:
        signals.run_cancelled.disconnect(on_cancelled)
        signals.step_failed.disconnect(on_step_failed)
    assert cancelled == [sleeping.id]
    assert failed_steps == []


@pytest.mark.django_db
def test_run_until_idle_enforces_job_timeouts():
    handle = jobs.slow_with_timeout.enqueue(0.4)
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.FAILED
    assert handle.error["type"] == "django_durable.exceptions.RunTimedOut"
    assert 2 <= executions(handle.id, "slow") <= 4
