"""A job timeout never frees a concurrency key while the run's step still executes."""

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from tests.testapp import jobs
from tests.testapp.models import Execution
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def interval(run_id):
    times = dict(Execution.objects.filter(run_id=run_id).values_list("step", "at"))
    return times["enter"], times["leave"]


def test_the_next_run_of_a_key_starts_after_the_timed_out_one_let_go(tmp_path):
    keyed = jobs.keyed_ignores_timeout.using(concurrency_key="acct-T")
    first = keyed.enqueue(4)  # timeout 1 s; its step ignores it for 4 s
    workers = [WorkerProcess(tmp_path / f"w{i}.log") for i in range(2)]
    try:
        wait_until(
            lambda: Execution.objects.filter(run_id=first.id, step="enter").exists(),
            what="the first run's step",
        )
        second = keyed.enqueue(0)  # a free worker is waiting for the key
        wait_until(
            lambda: Run.objects.get(pk=second.id).status == RunStatus.COMPLETED,
            timeout=60,
            what="the key's next run",
        )
    finally:
        for worker in workers:
            assert worker.terminate() == 0, worker.output
    run = Run.objects.get(pk=first.id)
    assert run.status == RunStatus.FAILED
    assert run.errors[-1]["type"] == "django_durable.exceptions.RunTimedOut"
    first_enter, first_leave = interval(first.id)
    second_enter, _ = interval(second.id)
    assert first_leave - first_enter >= 4
    assert second_enter >= first_leave, "the key's runs overlapped"
    assert not any("event=failed_deadline_passed" in w.output for w in workers)
