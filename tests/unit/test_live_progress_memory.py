"""Progress reported inside a long step is written while the step runs (fenced, at most
about once a second), on ``InMemoryStorage`` with no database."""

import pytest

from django_durable import RunStatus, cancel_run, job, journal
from django_durable.storage import get_storage
from django_durable.testing import InMemoryStorage, run_until_idle, use_storage

# What each step body saw in storage right after each ctx.progress() call.
seen: list[object] = []


def stored_progress(ctx):
    record = get_storage().get_run(ctx.run_id)
    return record.progress if record else None


@job(name="tests.live.counts")
def counts(ctx, n, atomic=False):
    def body():
        for i in range(1, n + 1):
            ctx.progress(i, n)
            seen.append(stored_progress(ctx))
        return n

    ctx.progress(0, n, "before the step")  # outside a step: with the next checkpoint
    seen.append(stored_progress(ctx))
    return ctx.step("count", body, atomic=atomic)


@job(name="tests.live.cancelled_meanwhile")
def cancelled_meanwhile(ctx):
    def body():
        cancel_run(ctx.run_id)
        ctx.progress(1, 2)  # its write meets the cancel request: not the step's failure
        return "step finished"

    ctx.step("cancelled", body)
    ctx.step("never", lambda: "never")


@pytest.fixture
def memory():
    seen.clear()
    with use_storage(InMemoryStorage()) as storage:
        yield storage


def progress(done, total):
    return {"done": done, "total": total, "message": ""}


def test_progress_in_a_step_is_stored_at_once_then_at_most_each_interval(memory, monkeypatch):
    monkeypatch.setattr(journal, "PROGRESS_INTERVAL", 3600.0)
    handle = counts.enqueue(3)
    run_until_idle()
    # Outside the step: buffered. In it: the first value at once, the rest throttled.
    assert seen == [None, progress(1, 3), progress(1, 3), progress(1, 3)]
    # The last value came with the step's checkpoint.
    assert memory.get_run(handle.id).progress == progress(3, 3)


def test_with_no_interval_every_value_is_stored(memory, monkeypatch):
    monkeypatch.setattr(journal, "PROGRESS_INTERVAL", 0.0)
    counts.enqueue(3)
    run_until_idle()
    assert seen == [None, progress(1, 3), progress(2, 3), progress(3, 3)]


def test_an_atomic_steps_progress_waits_for_its_commit(memory, monkeypatch):
    monkeypatch.setattr(journal, "PROGRESS_INTERVAL", 0.0)
    handle = counts.enqueue(2, atomic=True)
    run_until_idle()
    assert seen == [None, None, None]
    assert memory.get_run(handle.id).progress == progress(2, 2)


def test_a_refused_progress_write_does_not_fail_the_step(memory):
    handle = cancelled_meanwhile.enqueue()
    run_until_idle()
    record = memory.get_run(handle.id)
    assert record.status == RunStatus.CANCELLED
    assert [step.name for step in memory.load_journal(handle.id)] == ["cancelled"]
