"""The engine on ``InMemoryStorage``, with no database: steps and replay, retries, sleeps
moved on with ``advance()``, events, children, cancellation, timeouts, concurrency keys.

Nothing here is marked ``django_db``: pytest-django refuses any database access, so a
code path of the engine that reached past the storage for the database would fail here.
"""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from django_durable import (
    ChildRunFailed,
    EventTimeout,
    LeaseLost,
    RetryPolicy,
    RunStatus,
    cancel_run,
    get_run,
    job,
    retry_run,
    send_event,
    signals,
)
from django_durable.status import StepStatus
from django_durable.storage import get_storage
from django_durable.storage.base import Checkpoint
from django_durable.testing import InMemoryStorage, run_until_idle, use_storage

NO_DELAY = RetryPolicy(max_attempts=3, initial_delay=0, jitter=0)
# Counts of step bodies executed, by name: replays must not add to them.
calls: dict[str, int] = {}
calls_lock = threading.Lock()


def called(name, value=None):
    with calls_lock:
        calls[name] = calls.get(name, 0) + 1
    return value if value is not None else name


def memory() -> InMemoryStorage:
    storage = get_storage()
    assert isinstance(storage, InMemoryStorage)
    return storage


@pytest.fixture(autouse=True)
def storage(request):
    assert request.node.get_closest_marker("django_db") is None
    calls.clear()
    with use_storage(InMemoryStorage()) as installed:
        yield installed


@job(name="tests.memory.three_steps")
def three_steps(ctx, n):
    first = ctx.step("first", lambda: called("first", n))
    second = ctx.step("second", lambda: called("second", first + 1))
    return ctx.step("third", lambda: called("third", second * 10))


@job(name="tests.memory.flaky_step")
def flaky_step(ctx):
    def body():
        called("flaky")
        if calls["flaky"] < 3:
            raise ConnectionError("try again")
        return "ok"

    return ctx.step("flaky", body, retry=NO_DELAY)


@job(name="tests.memory.fails_once", retry=RetryPolicy(max_attempts=2, initial_delay=60, jitter=0))
def fails_once(ctx):
    ctx.step("before", lambda: called("before"))
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return ctx.step("after", lambda: called("after"))


@job(name="tests.memory.sleeper")
def sleeper(ctx):
    ctx.step("before", lambda: called("before"))
    ctx.sleep("nap", timedelta(hours=1))
    return ctx.step("after", lambda: called("after"))


@job(name="tests.memory.waits_for_decision")
def waits_for_decision(ctx):
    try:
        return ctx.wait_for_event("decision", timeout=timedelta(days=2))["approved"]
    except EventTimeout:
        return "expired"


@job(name="tests.memory.child")
def child(ctx, n):
    if n < 0:
        raise ValueError(f"bad n {n}")
    return ctx.step("square", lambda: called("square", n * n))


@job(name="tests.memory.parent")
def parent(ctx, numbers):
    handles = ctx.start_children(child, [{"n": n} for n in numbers])
    try:
        return ctx.wait_for_children(handles)
    except ChildRunFailed:
        return "a child failed"


@job(name="tests.memory.cancels_itself")
def cancels_itself(ctx):
    ctx.step("cancel", lambda: cancel_run(ctx.run_id).status)
    return ctx.step("never", lambda: called("never"))


@job(name="tests.memory.slow", timeout=timedelta(minutes=1))
def slow(ctx):
    ctx.step("takes-two-minutes", lambda: memory().advance(120))
    return ctx.step("never", lambda: called("never"))


@job(name="tests.memory.naps_too_long", timeout=timedelta(minutes=1))
def naps_too_long(ctx):
    ctx.sleep("nap", timedelta(hours=1))


@job(name="tests.memory.keyed")
def keyed(ctx, label):
    ctx.wait_for_event("go")
    return ctx.step("work", lambda: called(label))


@job(name="tests.memory.atomic_failure")
def atomic_failure(ctx):
    def body():
        # Enqueued inside the step's transaction: undone with it.
        three_steps.enqueue(n=0)
        raise RuntimeError("roll back")

    ctx.step("atomic", body, atomic=True)


def test_the_database_is_out_of_reach():
    # pytest-django's guard, or Django's dummy backend with no database configured.
    with pytest.raises((RuntimeError, ImproperlyConfigured)):
        connection.ensure_connection()


def test_steps_run_once_and_are_journaled(storage):
    run = three_steps.enqueue(n=1)
    assert run_until_idle() == 1
    run.refresh()
    assert (run.status, run.output) == (RunStatus.COMPLETED, 20)
    journal = storage.load_journal(run.id)
    assert [(s.position, s.name, s.result) for s in journal] == [
        (0, "first", 1),
        (1, "second", 2),
        (2, "third", 20),
    ]
    assert calls == {"first": 1, "second": 1, "third": 1}


def test_a_step_retry_runs_inside_one_attempt(storage):
    run = flaky_step.enqueue()
    run_until_idle()
    run.refresh()
    assert (run.status, run.output, run.attempt) == (RunStatus.COMPLETED, "ok", 1)
    (entry,) = storage.load_journal(run.id)
    assert entry.attempts == 3 and calls["flaky"] == 3


def test_a_run_retry_waits_its_backoff_and_replays_finished_steps(storage):
    run = fails_once.enqueue()
    assert run_until_idle() == 1
    run.refresh()
    assert (run.status, run.attempt) == (RunStatus.WAITING, 2)
    assert run.errors[0]["message"] == "first attempt fails"
    assert run_until_idle() == 0  # its 60 s backoff has not passed
    storage.advance(61)
    assert run_until_idle() == 1
    run.refresh()
    assert (run.status, run.output) == (RunStatus.COMPLETED, "after")
    assert calls == {"before": 1, "after": 1}


def test_a_sleep_ends_when_the_clock_is_advanced(storage):
    run = sleeper.enqueue()
    run_until_idle()
    record = storage.get_run(run.id)
    assert record.status == RunStatus.WAITING
    assert record.wake_at - storage.now() > timedelta(minutes=59)
    storage.advance(timedelta(minutes=30))
    assert run_until_idle() == 0
    storage.advance(timedelta(minutes=31))
    assert run_until_idle() == 1
    assert get_run(run.id).output == "after"
    assert calls == {"before": 1, "after": 1}


def test_the_clock_only_moves_forward(storage):
    with pytest.raises(ValueError, match="only moves forward"):
        storage.advance(-1)


def test_an_event_wakes_the_run_and_a_missing_one_times_out(storage):
    approved = waits_for_decision.enqueue()
    ignored = waits_for_decision.enqueue()
    run_until_idle()
    assert get_run(approved.id).status == get_run(ignored.id).status == RunStatus.WAITING
    send_event(approved.id, "decision", {"approved": "yes"})
    assert run_until_idle() == 1
    assert get_run(approved.id).output == "yes"
    storage.advance(timedelta(days=2, seconds=1))
    assert run_until_idle() == 1
    assert get_run(ignored.id).output == "expired"


def test_children_run_and_wake_their_parent(storage):
    run = parent.enqueue(numbers=[2, 3])
    assert run_until_idle() == 4  # parent, two children, parent again
    assert get_run(run.id).output == [4, 9]
    kids = [r for r in storage.runs() if r.parent_id == run.id]
    assert sorted(r.output for r in kids) == [4, 9]


def test_a_failed_child_is_reported_to_its_parent(storage):
    run = parent.enqueue(numbers=[2, -1])
    run_until_idle()
    assert get_run(run.id).output == "a child failed"


def test_cancelling_a_waiting_parent_cancels_its_children(storage):
    run = parent.enqueue(numbers=[1, 2])
    assert run_until_idle(max_runs=1) == 1  # the parent starts its children and waits
    assert cancel_run(run.id).status == RunStatus.CANCELLED
    kids = [r for r in storage.runs() if r.parent_id == run.id]
    assert [r.status for r in kids] == [RunStatus.CANCELLED, RunStatus.CANCELLED]
    assert run_until_idle() == 0
    # Retried, it resumes where it was: its children were cancelled, so they failed it.
    retry_run(run.id)
    run_until_idle()
    assert get_run(run.id).output == "a child failed"


def test_a_running_run_stops_at_its_next_operation_once_cancelled(storage):
    seen = []
    signals.run_cancelled.connect(
        lambda sender, run, **kw: seen.append(run.id), weak=False, dispatch_uid="memory"
    )
    try:
        run = cancels_itself.enqueue()
        run_until_idle()
    finally:
        signals.run_cancelled.disconnect(dispatch_uid="memory")
    assert get_run(run.id).status == RunStatus.CANCELLED
    assert "never" not in calls and seen == [run.id]


def test_a_timeout_fails_the_run_at_its_next_operation(storage):
    run = slow.enqueue()
    run_until_idle()
    failed = get_run(run.id)
    assert failed.status == RunStatus.FAILED
    assert failed.error["type"].endswith("RunTimedOut")
    assert "never" not in calls


def test_a_waiting_run_past_its_deadline_is_failed_by_the_sweep(storage):
    run = naps_too_long.enqueue()
    run_until_idle()
    storage.advance(61)
    assert storage.fail_overdue(limit=10) == [run.id]
    assert get_run(run.id).error["type"] == "django_durable.exceptions.RunTimedOut"


def test_one_run_per_concurrency_key(storage):
    first = keyed.using(concurrency_key="account-1").enqueue(label="first")
    second = keyed.using(concurrency_key="account-1").enqueue(label="second")
    other = keyed.using(concurrency_key="account-2").enqueue(label="other")
    assert run_until_idle() == 2  # first and other wait for "go"; second waits for the key
    assert get_run(second.id).status == RunStatus.PENDING
    send_event(first.id, "go")
    send_event(other.id, "go")
    assert run_until_idle() == 3  # first finishes, freeing the key; second starts
    send_event(second.id, "go")
    run_until_idle()
    assert {get_run(r.id).status for r in (first, second, other)} == {RunStatus.COMPLETED}


def test_an_atomic_step_rolls_back_what_it_did(storage):
    run = atomic_failure.enqueue()
    run_until_idle()
    assert get_run(run.id).status == RunStatus.FAILED
    assert [r.job_name for r in storage.runs()] == [atomic_failure.name]
    (entry,) = storage.load_journal(run.id)
    assert entry.status == StepStatus.FAILED


def test_enqueue_signals_wait_for_the_storages_transaction(storage):
    seen = []
    signals.run_enqueued.connect(
        lambda sender, run, **kw: seen.append(run.id), weak=False, dispatch_uid="memory"
    )
    try:
        with pytest.raises(RuntimeError), storage.atomic():
            three_steps.enqueue(n=1)
            raise RuntimeError
        assert seen == [] and storage.runs() == []
        with storage.atomic():
            kept = three_steps.enqueue(n=1)
            assert seen == []
        assert seen == [kept.id]
    finally:
        signals.run_enqueued.disconnect(dispatch_uid="memory")


def test_a_lease_lost_to_a_sweep_is_taken_over(storage, settings):
    settings.DURABLE = {"STALE_AFTER": 10}
    run = three_steps.enqueue(n=2)
    (dead,) = storage.claim(owner="dead", job_names=[three_steps.name], queues=None, limit=1)
    storage.advance(11)
    assert storage.recover_stale(max_recoveries=5, limit=10).requeued == [run.id]
    assert run_until_idle() == 1
    assert get_run(run.id).output == 30
    with pytest.raises(LeaseLost):  # the dead worker's late write is refused
        storage.complete(dead.lease, "late", Checkpoint())


def test_threads_sharing_the_storage_execute_each_run_once(storage):
    runs = [three_steps.enqueue(n=n) for n in range(40)]
    executed = []

    def drain():
        executed.append(run_until_idle())

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(executed) == 40
    assert [get_run(r.id).output for r in runs] == [(n + 1) * 10 for n in range(40)]
    assert calls == {"first": 40, "second": 40, "third": 40}
