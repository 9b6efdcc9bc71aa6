"""``async def`` jobs on each database: in-process through ``run_until_idle`` (a thread
runs the job on a loop of its own) and on a worker's event loop."""

import threading
import time

import pytest
from asgiref.sync import async_to_sync

from django_durable import RunStatus, asend_event, cancel_run, get_run
from django_durable.models import Run, RunLog, Step
from django_durable.testing import run_until_idle
from django_durable.testing.time_travel import time_travel
from django_durable.worker import Worker
from tests.testapp import async_jobs
from tests.testapp.jobs import executions
from tests.testapp.models import Account
from tests.workers import wait_until


def counts(run_id):
    return [executions(run_id, f"step-{n}") for n in (1, 2, 3)]


@pytest.mark.django_db
def test_an_async_job_runs_async_and_plain_steps_once_each():
    handle = async_jobs.async_steps.enqueue()
    assert run_until_idle() == 1
    run = get_run(handle.id)
    assert run.status == RunStatus.COMPLETED, run.errors
    assert run.output == ["step-1", "step-2", "step-3"]
    assert counts(handle.id) == [1, 1, 1]
    assert run.progress == {"done": 2, "total": 3, "message": "two done"}
    assert list(RunLog.objects.filter(run_id=handle.id).values_list("message", flat=True)) == [
        "starting"
    ]


@pytest.mark.django_db
def test_an_async_job_sleeps_waits_for_an_event_and_a_child_then_replays_its_steps_once():
    handle = async_jobs.async_waits.enqueue()
    with time_travel() as clock:
        run_until_idle()
        assert get_run(handle.id).status == RunStatus.WAITING  # asleep
        clock.advance(1)
        run_until_idle()
        assert Step.objects.get(run_id=handle.id, name="go").status == "waiting"
        async_to_sync(asend_event)(handle.id, "go", {"n": 1})
        run_until_idle()  # the parent starts its child; the child runs; the parent ends
    run = get_run(handle.id)
    assert run.status == RunStatus.COMPLETED, run.errors
    assert run.output == {"payload": {"n": 1}, "child": ["step-1", "step-2", "step-3"]}
    (child,) = Run.objects.filter(parent_id=handle.id)
    assert counts(child.id) == [1, 1, 1]


@pytest.mark.django_db
@pytest.mark.parametrize("fail", [False, True])
def test_an_async_atomic_step_commits_its_writes_with_its_checkpoint_or_not_at_all(fail):
    handle = async_jobs.async_atomic.enqueue("ada", fail=fail)
    run_until_idle()
    run = get_run(handle.id)
    owners = sorted(Account.objects.values_list("owner", flat=True))
    if fail:
        assert run.status == RunStatus.FAILED
        assert owners == []
        assert Step.objects.get(run_id=handle.id).status == "failed"
    else:
        assert run.status == RunStatus.COMPLETED, run.errors
        assert owners == ["ada", "ada-sync"]
        assert run.output == Account.objects.get(owner="ada").pk


@pytest.fixture
def poll(settings):
    # In this process a listener thread would outlive the worker and hold a connection.
    settings.DURABLE = {**settings.DURABLE, "LISTEN_DATABASE": False}


def run_worker(**options):
    worker = Worker(jobs=options.pop("jobs"), **options)
    thread = threading.Thread(target=worker.run)
    thread.start()
    return worker, thread


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("poll")
def test_the_event_loop_holds_many_runs_at_once():
    handles = [async_jobs.async_sleeper.enqueue(0.5) for _ in range(40)]
    _, thread = run_worker(
        jobs={async_jobs.async_sleeper.name: async_jobs.async_sleeper},
        concurrency=1,
        async_concurrency=40,
        burst=True,
    )
    thread.join(60)
    assert not thread.is_alive()
    runs = list(Run.objects.filter(pk__in=[h.id for h in handles]))
    assert {run.status for run in runs} == {RunStatus.COMPLETED}
    # Every run started before any finished: all 40 awaited their sleep together.
    assert max(run.started_at for run in runs) < min(run.finished_at for run in runs)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("poll")
def test_on_the_event_loop_steps_journal_once_and_atomic_writes_commit_once():
    steps = async_jobs.async_steps.enqueue()
    atomic = async_jobs.async_atomic.enqueue("grace")
    jobs = {job.name: job for job in (async_jobs.async_steps, async_jobs.async_atomic)}
    _, thread = run_worker(jobs=jobs, async_concurrency=4, burst=True)
    thread.join(60)
    assert get_run(steps.id).status == RunStatus.COMPLETED
    assert counts(steps.id) == [1, 1, 1]
    assert get_run(atomic.id).status == RunStatus.COMPLETED
    assert sorted(Account.objects.values_list("owner", flat=True)) == ["grace", "grace-sync"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("poll")
def test_a_cancelled_async_run_stops_at_its_next_operation():
    handle = async_jobs.async_until_cancelled.enqueue()
    job = async_jobs.async_until_cancelled
    worker, thread = run_worker(jobs={job.name: job}, async_concurrency=2)
    try:
        wait_until(lambda: Step.objects.filter(run_id=handle.id).count() >= 3, what="ticks")
        cancel_run(handle.id)
        wait_until(lambda: get_run(handle.id).status == RunStatus.CANCELLED, what="the cancel")
        ticks = Step.objects.filter(run_id=handle.id).count()
        time.sleep(0.3)
        assert Step.objects.filter(run_id=handle.id).count() == ticks  # it stopped
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
