"""cancel_run, retry_run and restart_run, in-process (tests/acceptance/test_cancel_retry_workers.py
has the cancel of a run a real worker is executing)."""

import pytest

from django_durable import RunStatus, cancel_run, restart_run, retry_run, send_event
from django_durable.models import Run
from django_durable.testing import run_until_idle
from tests.testapp import jobs
from tests.testapp.jobs import executions


def status(run_id):
    return Run.objects.get(pk=run_id).status


@pytest.mark.django_db
def test_pending_and_waiting_runs_are_cancelled_at_once():
    pending = jobs.echo.enqueue()
    waiting = jobs.approval.enqueue()
    assert cancel_run(pending.id).status == RunStatus.CANCELLED
    run_until_idle()  # the approval parks; the cancelled run never executes
    assert status(pending.id) == RunStatus.CANCELLED
    assert Run.objects.get(pk=pending.id).started_at is None
    assert status(waiting.id) == RunStatus.WAITING
    handle = cancel_run(waiting.id)
    assert handle.status == RunStatus.CANCELLED and handle.finished_at is not None
    with pytest.raises(ValueError, match="is cancelled"):
        send_event(waiting.id, "approval", 1)


@pytest.mark.django_db
def test_cancelling_a_parent_cancels_its_unfinished_children():
    parent = jobs.fan_out.enqueue([1, 2])
    run_until_idle(max_runs=1)  # only the parent: children stay pending
    assert status(parent.id) == RunStatus.WAITING
    cancel_run(parent.id)
    assert set(Run.objects.filter(parent_id=parent.id).values_list("status", flat=True)) == {
        "cancelled"
    }


@pytest.mark.django_db
def test_retry_resumes_a_failed_run_at_the_failed_step():
    handle = jobs.fails_first_attempt.enqueue()
    run_until_idle()
    assert status(handle.id) == RunStatus.FAILED
    retried = retry_run(handle.id)
    assert retried.status == RunStatus.PENDING and retried.attempt == 2
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == "two"
    assert executions(handle.id, "one") == 1 and executions(handle.id, "two") == 2


@pytest.mark.django_db
def test_retry_resumes_a_cancelled_run_where_it_waited():
    handle = jobs.approval.enqueue()
    run_until_idle()
    cancel_run(handle.id)
    retry_run(handle.id)
    run_until_idle()
    assert status(handle.id) == RunStatus.WAITING  # back at its wait, not restarted
    send_event(handle.id, "approval", "ok")
    run_until_idle()
    handle.refresh()
    assert handle.output == "ok" and executions(handle.id, "before") == 1


@pytest.mark.django_db
def test_only_failed_or_cancelled_runs_retry():
    handle = jobs.echo.enqueue()
    with pytest.raises(ValueError, match="only failed or cancelled runs retry"):
        retry_run(handle.id)


@pytest.mark.django_db
def test_restart_runs_every_step_again_with_the_same_events():
    handle = jobs.approval.enqueue()
    run_until_idle()
    send_event(handle.id, "approval", "yes")
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and executions(handle.id, "before") == 1
    restarted = restart_run(handle.id)
    assert (restarted.status, restarted.attempt, restarted.output) == (RunStatus.PENDING, 2, None)
    run_until_idle()
    handle.refresh()
    # The consumed event is delivered again, so the run does not park a second time.
    assert handle.status == RunStatus.COMPLETED and handle.output == "yes"
    assert executions(handle.id, "before") == 2


@pytest.mark.django_db
def test_only_finished_runs_restart():
    handle = jobs.echo.enqueue()
    with pytest.raises(ValueError, match="only finished runs restart"):
        restart_run(handle.id)
