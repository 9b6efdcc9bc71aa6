"""Rows this version did not write (by hand, a migration, an older version) cost only
themselves: each is reported once as ``event=malformed_row`` and healed or failed with
a clear error; sweeps, child completions and senders of events carry on, and no worker
exits because of a row.
"""

import logging
import uuid
from datetime import timedelta

import pytest
from django.db.models.expressions import RawSQL
from django.utils import timezone

from django_durable import RunStatus, send_event
from django_durable.models import Run, RunLog, Step
from django_durable.storage import get_storage
from django_durable.storage.rows import one_row
from django_durable.testing import run_until_idle
from tests.testapp import jobs
from tests.testapp.jobs import executions

# JSON null, not SQL NULL (the column is NOT NULL): what a hand-written UPDATE leaves.
JSON_NULL = RawSQL("'null'", ())
HOUR_AGO = timedelta(hours=-1)


def corrupt(run_id, **changes):
    assert Run.objects.filter(pk=run_id).update(**changes) == 1


def expired_without_recoveries(run_id, max_recoveries=5):
    """Leased by a worker that is gone, with no recoveries left and errors null."""
    corrupt(
        run_id,
        status=RunStatus.RUNNING,
        lease_owner="gone",
        lease_token=uuid.uuid4(),
        lease_expires_at=timezone.now() + HOUR_AGO,
        recoveries=max_recoveries,
        errors=JSON_NULL,
    )


def overdue_waiting(run_id):
    """Waiting for an event that never comes, past its deadline, with errors null."""
    corrupt(
        run_id,
        status=RunStatus.WAITING,
        waiting_for={"event": "never"},
        deadline=timezone.now() + HOUR_AGO,
        errors=JSON_NULL,
    )


def waiting_parent(waiting_for):
    """A parent waiting for its one child (pending), its waiting_for replaced."""
    parent = jobs.fan_out.enqueue([3])
    assert run_until_idle(max_runs=1) == 1
    corrupt(parent.id, waiting_for=waiting_for)
    assert Run.objects.get(pk=parent.id).status == RunStatus.WAITING
    return parent.id


def reports(messages, run_id):
    return [m for m in messages if "event=malformed_row" in m and f"run={run_id}" in m]


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.INFO, logger="django_durable")
    return lambda: [record.getMessage() for record in caplog.records]


# -- each malformed row on its own, in this process ----------------------------------------


@pytest.mark.django_db
def test_errors_null_with_an_expired_lease_and_no_recoveries_left_fails_once(logged):
    run_id = jobs.echo.enqueue().id
    expired_without_recoveries(run_id)
    swept = get_storage().recover_stale(max_recoveries=5, limit=10)
    assert swept.failed == [run_id]
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.FAILED
    assert [error["type"] for error in run.errors] == ["django_durable.WorkerLost"]
    (line,) = reports(logged(), run_id)
    assert "problem='errors is null, not a list' action=errors_replaced" in line
    assert get_storage().recover_stale(max_recoveries=5, limit=10).failed == []
    assert len(reports(logged(), run_id)) == 1


@pytest.mark.django_db
def test_a_waiting_run_past_its_deadline_with_errors_null_fails_once(logged):
    run_id = jobs.echo.enqueue().id
    overdue_waiting(run_id)
    assert get_storage().fail_overdue(limit=10) == [run_id]
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.waiting_for) == (RunStatus.FAILED, None)
    assert [error["type"] for error in run.errors] == ["django_durable.exceptions.RunTimedOut"]
    assert get_storage().fail_overdue(limit=10) == []
    assert len(reports(logged(), run_id)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("waiting_for", "problem"),
    [
        ("garbage", "waiting_for is a string ('garbage'), not an object"),
        ({"children": "garbage"}, "waiting_for['children'] is a string ('garbage'), not run"),
        ({"children": [1, 2]}, "waiting_for['children'] is a list ([1, 2]), not run ids"),
    ],
)
def test_a_child_whose_parent_has_garbage_in_waiting_for_completes_and_wakes_it(
    logged, waiting_for, problem
):
    parent_id = waiting_parent(waiting_for)
    assert run_until_idle() == 2  # the child, then the parent it woke
    child = Run.objects.get(parent_id=parent_id)
    assert (child.status, child.output, child.recoveries) == (RunStatus.COMPLETED, 9, 0)
    parent = Run.objects.get(pk=parent_id)
    # Woken, the parent's replay read its journal and found its child done.
    assert (parent.status, parent.output) == (RunStatus.COMPLETED, 9)
    (line,) = reports(logged(), parent_id)
    assert problem in line and "action=woken" in line


@pytest.mark.django_db
def test_an_event_for_a_run_with_garbage_in_waiting_for_is_delivered_and_wakes_it(logged):
    handle = jobs.approval.enqueue()
    run_until_idle()
    corrupt(handle.id, waiting_for=["garbage"])
    send_event(handle.id, "approval", "yes")
    assert Run.objects.get(pk=handle.id).status == RunStatus.PENDING
    run_until_idle()
    assert Run.objects.get(pk=handle.id).output == "yes"
    assert len(reports(logged(), handle.id)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"args": {"order": 1}}, "args are an object ({'order': 1}), not a list"),
        ({"args": "order"}, "args are a string ('order'), not a list"),
        ({"kwargs": [1]}, "kwargs are a list ([1]), not an object"),
        ({"args": JSON_NULL}, "args are null, not a list"),
    ],
)
def test_a_run_whose_arguments_are_not_a_list_and_an_object_fails_once_unrun(
    logged, changes, problem
):
    run_id = jobs.three_steps.enqueue().id
    corrupt(run_id, **changes)
    assert run_until_idle() == 1
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.attempt, run.recoveries) == (RunStatus.FAILED, 1, 0)
    (error,) = run.errors
    assert error["type"] == "django_durable.exceptions.MalformedRun"
    assert error["message"] == f"run {run_id} cannot be executed: its {problem}"
    assert executions(run_id, "step-1") == 0
    assert not Step.objects.filter(run_id=run_id).exists()
    assert not RunLog.objects.filter(run_id=run_id).exists()
    assert run_until_idle() == 0
    (line,) = reports(logged(), run_id)
    assert "action=failed" in line


@pytest.mark.django_db
def test_a_run_with_errors_null_that_fails_gets_a_history_again(logged):
    run_id = jobs.square.enqueue(-1).id
    corrupt(run_id, errors=JSON_NULL)
    run_until_idle()
    run = Run.objects.get(pk=run_id)
    assert [error["message"] for error in run.errors] == ["negative: -1"]
    assert len(reports(logged(), run_id)) == 1


@pytest.mark.django_db
def test_a_row_that_breaks_its_processing_is_rolled_back_settled_and_reported(logged):
    run_id = jobs.echo.enqueue().id

    def process():
        Run.objects.filter(pk=run_id).update(priority=50)
        raise TypeError("the row holds something unexpected")

    def settle(problem):
        Run.objects.filter(pk=run_id).update(priority=-50)
        return "settled"

    assert one_row("default", run_id, process, settle=settle) is None
    assert Run.objects.get(pk=run_id).priority == -50  # process's write was rolled back
    (line,) = reports(logged(), run_id)
    assert "TypeError: the row holds something unexpected" in line and "action=settled" in line


# -- the fleet: two real workers, ordinary runs, every malformed row at once ----------------
