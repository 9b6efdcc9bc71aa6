"""A fork executed by real ``runworker`` processes: the old code fails, the fix is
deployed (a new worker process), the fork of the failed run completes on it."""

import pytest

from django_durable import RunStatus, fork_run, send_event
from django_durable.models import Run, RunEvent, Step
from tests.testapp import fork_jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def status(run_id):
    return Run.objects.get(pk=run_id).status


def finished(run_id):
    return lambda: status(run_id) in (RunStatus.COMPLETED, RunStatus.FAILED)


def test_a_fork_from_failure_completes_on_the_fixed_deploy(tmp_path):
    old = fork_jobs.fork_three_steps.enqueue(n=3)
    parent = fork_jobs.fork_parent.enqueue()
    events = fork_jobs.fork_events.enqueue()
    send_event(events.id, "go", "a")
    send_event(events.id, "go", "b")
    buggy = WorkerProcess(tmp_path / "old.log")
    try:
        for run_id in (old.id, parent.id, events.id):
            wait_until(finished(run_id), what="the old code to fail")
    finally:
        assert buggy.terminate() == 0
    assert {status(run.id) for run in (old, parent, events)} == {RunStatus.FAILED}
    old_journal = list(Step.objects.filter(run_id=old.id).values_list("name", "status"))
    old_events = list(RunEvent.objects.filter(run_id=events.id).values_list("id", "consumed_at"))

    forks = [fork_run(old.id), fork_run(parent.id), fork_run(events.id)]
    fixed = WorkerProcess(tmp_path / "new.log", DURABLE_TEST_FORK_FIXED="1")
    try:
        for fork in forks:
            wait_until(finished(fork.id), what="the fork to finish on the new code")
    finally:
        assert fixed.terminate() == 0
    outputs = [Run.objects.get(pk=fork.id).output for fork in forks]
    assert outputs == [[3, 6, "three fixed"], [4, 9, "after fixed"], ["a", "b", "last fixed"]]
    assert {status(fork.id) for fork in forks} == {RunStatus.COMPLETED}
    # Steps before the failure ran once, under the old code; the failed ones again.
    assert executions(forks[0].id, "one") == executions(forks[0].id, "two") == 0
    assert executions(forks[0].id, "three") == 1
    assert Run.objects.filter(job_name="tests.fork_child").count() == 2  # reused
    assert executions(forks[2].id, "between") == 0
    # The old runs are as they were.
    assert status(old.id) == RunStatus.FAILED
    assert list(Step.objects.filter(run_id=old.id).values_list("name", "status")) == old_journal
    assert (
        list(RunEvent.objects.filter(run_id=events.id).values_list("id", "consumed_at"))
        == old_events
    )
