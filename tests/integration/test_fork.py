"""fork_run: a new run that keeps the journal before the fork point, with real execution."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_durable import (
    JobNotRegistered,
    RunNotFound,
    RunStatus,
    cancel_run,
    fork_run,
    get_run,
    send_event,
)
from django_durable.models import Run, RunEvent, Step
from django_durable.testing import run_until_idle
from docs.snippets.cancellation import admin_tools
from tests.testapp import fork_jobs
from tests.testapp.jobs import executions


@pytest.fixture(autouse=True)
def bug_not_fixed():
    fork_jobs.FIXED["on"] = False
    yield
    fork_jobs.FIXED["on"] = False


def journal(run_id):
    return list(
        Step.objects.filter(run_id=run_id)
        .order_by("position")
        .values_list("position", "name", "status", "result")
    )


def failed_three_steps():
    handle = fork_jobs.fork_three_steps.enqueue(n=5)
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.FAILED
    return handle


@pytest.mark.django_db
def test_fork_from_failure_runs_the_fixed_step_and_keeps_the_rest():
    old = failed_three_steps()
    old_journal = journal(old.id)
    assert [row[2] for row in old_journal] == ["completed", "completed", "failed"]
    fork_jobs.FIXED["on"] = True  # the fix is deployed

    fork = fork_run(old.id)
    assert fork.status == RunStatus.PENDING and fork.forked_from == old.id
    assert fork.job_name == old.job_name and fork.kwargs == {"n": 5} and fork.attempt == 1
    assert [row[1] for row in journal(fork.id)] == ["one", "two"]  # copied, before step three
    run_until_idle()
    fork.refresh()
    assert fork.status == RunStatus.COMPLETED
    assert fork.output == [5, 10, "three fixed"]
    # Steps one and two ran once, in the old run; step three ran in both.
    assert executions(fork.id, "one") == executions(fork.id, "two") == 0
    assert executions(fork.id, "three") == 1
    assert executions(old.id, "one") == executions(old.id, "two") == 1
    # The old run is untouched.
    old_now = get_run(old.id)
    assert old_now.status == RunStatus.FAILED and old_now.forked_from is None
    assert old_now.finished_at == old.finished_at and old_now.errors == old.errors
    assert journal(old.id) == old_journal


@pytest.mark.django_db
def test_fork_from_an_earlier_step_runs_it_and_the_ones_after():
    old = failed_three_steps()
    fork_jobs.FIXED["on"] = True
    by_name = fork_run(old.id, from_step="two")
    by_position = fork_run(old.id, from_step=1)
    run_until_idle()
    for handle in (by_name, by_position):
        handle.refresh()
        assert handle.status == RunStatus.COMPLETED
        assert handle.output == [5, 10, "three fixed"]
        assert executions(handle.id, "one") == 0
        assert executions(handle.id, "two") == executions(handle.id, "three") == 1
    from_start = fork_run(old.id, from_step=0, kwargs={"n": 7})
    run_until_idle()
    from_start.refresh()
    assert from_start.output == [7, 14, "three fixed"]
    assert executions(from_start.id, "one") == 1


@pytest.mark.django_db
def test_a_fork_of_a_completed_run_kept_whole_replays_to_the_same_output():
    fork_jobs.FIXED["on"] = True
    old = fork_jobs.fork_three_steps.enqueue(n=2)
    run_until_idle()
    fork = fork_run(old.id, from_step=3)
    run_until_idle()
    fork.refresh()
    assert fork.output == [2, 4, "three fixed"]
    assert sum(executions(fork.id, step) for step in ("one", "two", "three")) == 0


@pytest.mark.django_db
def test_a_fork_reuses_the_children_started_before_the_fork_point():
    parent = fork_jobs.fork_parent.enqueue()
    run_until_idle()
    parent.refresh()
    assert parent.status == RunStatus.FAILED
    children = Run.objects.filter(job_name="tests.fork_child")
    assert children.count() == 2 and set(children.values_list("parent_id", flat=True)) == {
        parent.id
    }
    fork_jobs.FIXED["on"] = True

    fork = fork_run(parent.id)
    run_until_idle()
    fork.refresh()
    assert fork.status == RunStatus.COMPLETED
    assert fork.output == [4, 9, "after fixed"]
    # Reused, not recreated: still two child runs, each executed once.
    assert children.count() == 2
    assert not Run.objects.filter(parent_id=fork.id).exists()
    assert sum(executions(child, "square") for child in children.values_list("pk", flat=True)) == 2


@pytest.mark.django_db
def test_children_after_the_fork_point_are_created_afresh():
    parent = fork_jobs.fork_parent.enqueue()
    run_until_idle()
    fork_jobs.FIXED["on"] = True
    # Position 2 starts the second child: the first is reused, the second made again.
    fork = fork_run(parent.id, from_step=2)
    run_until_idle()
    fork.refresh()
    assert fork.output == [4, 9, "after fixed"]
    assert Run.objects.filter(job_name="tests.fork_child").count() == 3
    (new_child,) = Run.objects.filter(parent_id=fork.id)
    assert new_child.kwargs == {"i": 3} and new_child.status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_a_fork_from_failure_starts_a_failed_child_again():
    parent = fork_jobs.fork_parent.enqueue()
    run_until_idle(max_runs=2)  # the parent parks; its first child completes
    run_until_idle(max_runs=1)  # the parent starts its second child and parks
    second = Run.objects.filter(job_name="tests.fork_child").latest("id")
    cancel_run(second.pk)  # the second child ends cancelled, the parent with it
    cancel_run(parent.id)
    fork_jobs.FIXED["on"] = True
    fork = fork_run(parent.id)
    # The wait for the cancelled child would fail again: the fork starts it again.
    assert [row[1] for row in journal(fork.id)] == ["tests.fork_child", "children"]
    run_until_idle()
    fork.refresh()
    assert fork.status == RunStatus.COMPLETED and fork.output == [4, 9, "after fixed"]


@pytest.mark.django_db
def test_events_consumed_before_the_fork_point_stay_consumed():
    old = fork_jobs.fork_events.enqueue()
    send_event(old.id, "go", "first")
    send_event(old.id, "go", "second")
    run_until_idle()
    old.refresh()
    assert old.status == RunStatus.FAILED
    old_events = list(RunEvent.objects.filter(run_id=old.id).values_list("id", "consumed_at"))
    assert len(old_events) == 2 and all(consumed for _, consumed in old_events)
    fork_jobs.FIXED["on"] = True

    # From failure: both waits are kept, their events consumed in the fork's mailbox too.
    from_failure = fork_run(old.id)
    run_until_idle()
    from_failure.refresh()
    assert from_failure.status == RunStatus.COMPLETED
    assert from_failure.output == ["first", "second", "last fixed"]
    copies = RunEvent.objects.filter(run_id=from_failure.id).order_by("id")
    assert [(e.payload, e.consumed_at is not None) for e in copies] == [
        ("first", True),
        ("second", True),
    ]

    # From the step between the waits: the first event stays consumed, the second is
    # delivered again to the wait that runs again, and nothing is consumed twice.
    from_between = fork_run(old.id, from_step="between")
    run_until_idle()
    from_between.refresh()
    assert from_between.status == RunStatus.COMPLETED
    assert from_between.output == ["first", "second", "last fixed"]
    assert executions(from_between.id, "between") == 1
    copies = RunEvent.objects.filter(run_id=from_between.id).order_by("id")
    assert [e.payload for e in copies] == ["first", "second"]
    assert all(e.consumed_at is not None for e in copies)
    # The old run's events are untouched.
    assert list(RunEvent.objects.filter(run_id=old.id).values_list("id", "consumed_at")) == (
        old_events
    )


@pytest.mark.django_db
def test_a_fork_from_the_first_wait_takes_the_events_again_in_order():
    old = fork_jobs.fork_events.enqueue()
    send_event(old.id, "go", "first")
    send_event(old.id, "go", "second")
    run_until_idle()
    fork_jobs.FIXED["on"] = True
    fork = fork_run(old.id, from_step=0)
    assert not RunEvent.objects.filter(run_id=fork.id, consumed_at__isnull=False).exists()
    run_until_idle()
    fork.refresh()
    assert fork.output == ["first", "second", "last fixed"]


@pytest.mark.django_db
def test_bad_calls_are_refused_and_write_nothing():
    old = failed_three_steps()
    waiting = fork_jobs.fork_events.enqueue()
    run_until_idle()
    gone = Run.objects.create(job_name="tests.removed_job", status=RunStatus.FAILED)
    before = (Run.objects.count(), Step.objects.count(), RunEvent.objects.count())

    with pytest.raises(TypeError, match="bogus"):
        fork_run(old.id, kwargs={"bogus": 1})
    with pytest.raises(TypeError, match="n"):
        fork_run(old.id, args=[1, 2])  # n given twice (args and kept kwargs)
    with pytest.raises(TypeError, match=r"kwargs\['n'\]"):
        fork_run(old.id, kwargs={"n": object()})
    with pytest.raises(ValueError, match=r"out of range.*0 to 3"):
        fork_run(old.id, from_step=4)
    with pytest.raises(ValueError, match="out of range"):
        fork_run(old.id, from_step=-1)
    with pytest.raises(ValueError, match=r"no operation named 'nope'.*'one', 'two', 'three'"):
        fork_run(old.id, from_step="nope")
    with pytest.raises(TypeError, match="from_step"):
        fork_run(old.id, from_step=1.5)
    with pytest.raises(TypeError, match="from_step"):
        fork_run(old.id, from_step=True)
    with pytest.raises(TypeError, match="args must be a list"):
        fork_run(old.id, args="abc")
    with pytest.raises(RunNotFound):
        fork_run(uuid.uuid4())
    with pytest.raises(ValueError, match="not a"):
        fork_run("not-a-uuid")
    with pytest.raises(JobNotRegistered, match=f"run {gone.pk} cannot be forked"):
        fork_run(gone.pk)
    with pytest.raises(ValueError, match=r"it is waiting, not finished.*cancel it first"):
        fork_run(waiting.id)
    assert (Run.objects.count(), Step.objects.count(), RunEvent.objects.count()) == before
    assert not Run.objects.filter(forked_from__isnull=False).exists()


@pytest.mark.django_db
def test_the_docs_sample_forks_from_failure():
    old = failed_three_steps()
    fork_jobs.FIXED["on"] = True
    fork = admin_tools.rerun_from_failure(old.id)
    run_until_idle()
    fork.refresh()
    assert fork.forked_from == old.id and fork.output == [5, 10, "three fixed"]


@pytest.mark.django_db
def test_pruning_keeps_the_family_an_unfinished_fork_started_from():
    parent = fork_jobs.fork_parent.enqueue()
    run_until_idle()
    fork_jobs.FIXED["on"] = True
    # From the first wait: the fork reuses the first child and waits for it live.
    fork = fork_run(parent.id, from_step=1)
    old_family = Run.objects.exclude(pk=fork.id)
    old_family.update(finished_at=timezone.now() - timedelta(days=60))

    call_command("prune_runs", "--older-than", "1d", stdout=io.StringIO())
    assert old_family.count() == 3  # the parent and its two children, kept for the fork

    run_until_idle()
    fork.refresh()
    assert fork.status == RunStatus.COMPLETED, fork.errors
    assert fork.output == [4, 9, "after fixed"]
    call_command("prune_runs", "--older-than", "1d", stdout=io.StringIO())
    assert not Run.objects.filter(pk=parent.id).exists()  # the fork is finished: it goes
