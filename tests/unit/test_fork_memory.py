"""fork_run on ``InMemoryStorage``, with no database: the engine replays the copied
journal, children are reused, consumed events stay consumed."""

from collections import Counter

import pytest

from django_durable import RunStatus, fork_run, get_run, job, send_event
from django_durable.testing import InMemoryStorage, run_until_idle, use_storage

calls: Counter[str] = Counter()
FIXED = {"on": False}


def counted(name, value):
    def body():
        calls[name] += 1
        if name.startswith("buggy") and not FIXED["on"]:
            raise RuntimeError("bug")
        return value

    return body


@job(name="tests.memory_fork_child")
def child(ctx, i):
    return ctx.step("square", counted(f"square-{i}", i * i))


@job(name="tests.memory_fork_parent")
def parent(ctx):
    (first,) = ctx.wait_for_children([ctx.start_child(child, i=2)])
    event = ctx.wait_for_event("go")
    return [first, event, ctx.step("buggy", counted("buggy", "fixed"))]


@pytest.fixture
def storage():
    calls.clear()
    FIXED["on"] = False
    with use_storage(InMemoryStorage()) as storage:
        yield storage


def test_fork_in_memory(storage):
    old = parent.enqueue()
    send_event(old.id, "go", "g")
    run_until_idle()
    assert get_run(old.id).status == RunStatus.FAILED
    FIXED["on"] = True
    fork = fork_run(old.id)
    assert fork.forked_from == old.id
    run_until_idle()
    assert get_run(fork.id).output == [4, "g", "fixed"]
    assert calls == {"square-2": 1, "buggy": 2}  # the child is reused, not run again
    assert [run.job_name for run in storage.runs()].count("tests.memory_fork_child") == 1
    with pytest.raises(ValueError, match="out of range"):
        fork_run(old.id, from_step=9)
    assert len(storage.runs()) == 3
