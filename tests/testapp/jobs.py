"""Jobs the test suite runs, in-process and in real worker subprocesses."""

import os
import time
from datetime import timedelta

from django_durable import ChildRunFailed, EventTimeout, RetryPolicy, job

from .models import Account, Execution

NO_DELAY_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(0), jitter=0)


def executions(run_id, step):
    return Execution.objects.filter(run_id=run_id, step=step).count()


def counted(ctx, step, then=None):
    """A step body that records each execution before doing ``then``."""

    def body():
        Execution.objects.create(run_id=ctx.run_id, step=step)
        return then() if then else step

    return body


@job(name="tests.three_steps")
def three_steps(ctx, pause_in_step_2=0.0):
    def slow_the_first_time():
        if executions(ctx.run_id, "step-2") == 1:
            time.sleep(pause_in_step_2)  # long enough for the test to kill the worker
        return "step-2"

    return [
        ctx.step("step-1", counted(ctx, "step-1")),
        ctx.step("step-2", counted(ctx, "step-2", slow_the_first_time)),
        ctx.step("step-3", counted(ctx, "step-3")),
    ]


@job(name="tests.fails_in_step_3_once", retry=NO_DELAY_RETRY)
def fails_in_step_3_once(ctx):
    def flaky():
        if ctx.attempt == 1:
            raise ConnectionError("the service is down")
        return "step-3"

    for name in ("step-1", "step-2"):
        ctx.step(name, counted(ctx, name))
    return ctx.step("step-3", counted(ctx, "step-3", flaky))


@job(name="tests.atomic_then_raise")
def atomic_then_raise(ctx, owner):
    def create_and_fail():
        Account.objects.create(owner=owner)
        raise ValueError("refused after writing")

    return ctx.step("open-account", create_and_fail, atomic=True)


@job(name="tests.atomic_ok")
def atomic_ok(ctx, owner):
    return ctx.step("open-account", lambda: Account.objects.create(owner=owner).pk, atomic=True)


@job(name="tests.renames_its_step", retry=RetryPolicy(max_attempts=5, initial_delay=timedelta(0)))
def renames_its_step(ctx):
    # Attempt 1 journals "charge" then fails; attempt 2 asks for "charge-card" there.
    ctx.step("charge" if ctx.attempt == 1 else "charge-card", lambda: 1)
    if ctx.attempt == 1:
        raise RuntimeError("fail the first attempt")
    return "unreachable"


@job(name="tests.returns_object")
def returns_object(ctx):
    ctx.step("fine", lambda: "kept")
    return ctx.step("make", lambda: object())


@job(name="tests.echo")
def echo(ctx, *args, **kwargs):
    ctx.log.info("echo %s", args)
    ctx.progress(1, 1, "done")
    return {"args": args, "kwargs": kwargs}


def record(ctx, step):
    """A step body that stores which process ran it, and when."""

    def body():
        Execution.objects.create(run_id=ctx.run_id, step=step, pid=os.getpid(), at=time.time())
        return step

    return body


@job(name="tests.drain")
def drain(ctx):
    return [ctx.step(name, record(ctx, name)) for name in ("a", "b", "c")]


@job(name="tests.two_steps")
def two_steps(ctx):
    return [ctx.step(name, record(ctx, name)) for name in ("first", "second")]


@job(name="tests.keyed")
def keyed(ctx):
    ctx.step("enter", record(ctx, "enter"))
    ctx.step("work", lambda: time.sleep(0.01))
    ctx.step("leave", record(ctx, "leave"))


@job(name="tests.sleeper")
def sleeper(ctx, seconds):
    ctx.step("before", counted(ctx, "before"))
    ctx.sleep("nap", seconds)
    return ctx.step("after", counted(ctx, "after"))


@job(name="tests.approval")
def approval(ctx, timeout=None):
    ctx.step("before", counted(ctx, "before"))
    try:
        decision = ctx.wait_for_event("approval", timeout=timeout)
    except EventTimeout:
        decision = "timed out"
    ctx.step("after", counted(ctx, "after"))
    return decision


@job(name="tests.two_events")
def two_events(ctx):
    return [ctx.wait_for_event("item"), ctx.wait_for_event("item")]


@job(name="tests.square")
def square(ctx, i):
    if i < 0:
        raise ValueError(f"negative: {i}")
    return ctx.step("square", lambda: i * i)


@job(name="tests.fan_out")
def fan_out(ctx, numbers):
    children = ctx.start_children(square, [{"i": n} for n in numbers])
    ctx.step("started", counted(ctx, "started"))
    try:
        return sum(ctx.wait_for_children(children))
    except ChildRunFailed as failed:
        return {"failed": [f["id"] for f in failed.failures]}


@job(name="tests.same_key_child")
def same_key_child(ctx):
    ctx.start_child(square.using(concurrency_key="k"), 2)


@job(name="tests.fails_first_attempt")
def fails_first_attempt(ctx):
    ctx.step("one", counted(ctx, "one"))

    def two():
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "two"

    return ctx.step("two", counted(ctx, "two", two))


@job(name="tests.many_slow_steps")
def many_slow_steps(ctx, steps=50, pause=0.2):
    for i in range(steps):
        ctx.step(f"s{i}", counted(ctx, "slow", lambda: time.sleep(pause)))


@job(name="tests.slow_with_timeout", timeout=timedelta(seconds=1))
def slow_with_timeout(ctx, pause):
    for i in range(20):
        ctx.step(f"s{i}", counted(ctx, "slow", lambda: time.sleep(pause)))


@job(name="tests.slow_square")
def slow_square(ctx, i, pause=0.0):
    ctx.step("pause", lambda: time.sleep(pause))
    return ctx.step("square", lambda: i * i)


@job(name="tests.fan_out_to")
def fan_out_to(ctx, numbers, queue="default", pause=0.0):
    child = slow_square.using(queue_name=queue)
    children = ctx.start_children(child, [{"i": n, "pause": pause} for n in numbers])
    ctx.step("started", counted(ctx, "started"))
    return sum(ctx.wait_for_children(children))


@job(name="tests.reports_progress")
def reports_progress(ctx):
    ctx.step("first", lambda: None)
    ctx.log.info("first step done")
    ctx.progress(1, 2, "halfway")
    ctx.step("long", counted(ctx, "long", lambda: time.sleep(30)))


@job(name="tests.abandons_children")
def abandons_children(ctx):
    ctx.start_children(square.using(queue_name="kids"), [{"i": 1}, {"i": 2}])
    raise RuntimeError("the parent fails before waiting")


if os.environ.get("DURABLE_TEST_NEW_CODE"):
    # Only "newer" worker processes know this job: a rolling deploy.

    @job(name="tests.added_later")
    def added_later(ctx):
        return ctx.step("only", lambda: "ran")


# -- leases under stress (tests/acceptance/test_zombie_workers.py) ---------------------------------


def _pause_if_zombie(ctx):
    """In the worker started with DURABLE_TEST_ZOMBIE only: wait until another worker has
    completed the run (the test freezes this one meanwhile), then long enough for this
    worker's heartbeat to have run since it woke up. Other workers never pause."""
    if not os.environ.get("DURABLE_TEST_ZOMBIE"):
        return
    from django_durable.models import Run

    while not Run.objects.filter(pk=ctx.run_id, status="completed").exists():
        time.sleep(0.05)
    time.sleep(1.5)


def pid_step(ctx, step, pause=False, fail_first=False):
    """Record the execution (pid, time), optionally pause as a zombie, return the pid."""

    def body():
        Execution.objects.create(run_id=ctx.run_id, step=step, pid=os.getpid(), at=time.time())
        if fail_first and executions(ctx.run_id, step) == 1:
            raise ConnectionError("the first attempt fails")
        if pause:
            _pause_if_zombie(ctx)
        return os.getpid()

    return body


@job(name="tests.zombie_between_steps")
def zombie_between_steps(ctx):
    # An atomic first step commits its checkpoint at once: nothing is left buffered, so
    # only the worker's own view of its lease stands between a frozen worker and step b.
    first = ctx.step("a", pid_step(ctx, "a"), atomic=True)
    _pause_if_zombie(ctx)
    return [first, ctx.step("b", pid_step(ctx, "b")), ctx.step("c", pid_step(ctx, "c"))]


@job(name="tests.zombie_in_step")
def zombie_in_step(ctx):
    first = ctx.step("a", pid_step(ctx, "a"), atomic=True)
    return [first, ctx.step("b", pid_step(ctx, "b", pause=True)), ctx.step("c", pid_step(ctx, "c"))]


ZOMBIE_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(seconds=3), jitter=0)


@job(name="tests.zombie_in_retry")
def zombie_in_retry(ctx):
    first = ctx.step("a", pid_step(ctx, "a"), atomic=True)
    retried = ctx.step("r", pid_step(ctx, "r", fail_first=True), retry=ZOMBIE_RETRY)
    return [first, retried, ctx.step("c", pid_step(ctx, "c"))]


@job(name="tests.keyed_ignores_timeout", timeout=timedelta(seconds=1))
def keyed_ignores_timeout(ctx, pause):
    def work():
        Execution.objects.create(run_id=ctx.run_id, step="enter", pid=os.getpid(), at=time.time())
        time.sleep(pause)  # does not look at the deadline
        Execution.objects.create(run_id=ctx.run_id, step="leave", pid=os.getpid(), at=time.time())

    ctx.step("work", work)
    return ctx.step("after", lambda: "done")


@job(name="tests.starts_keyed_child")
def starts_keyed_child(ctx, key):
    return ctx.wait_for_children([ctx.start_child(square.using(concurrency_key=key), 3)])


@job(name="tests.keyed_grandparent")
def keyed_grandparent(ctx, grandchild_key):
    return ctx.wait_for_children([ctx.start_child(starts_keyed_child, grandchild_key)])


@job(name="tests.short_lived", retention=timedelta(days=1))
def short_lived(ctx):
    return ctx.step("only", lambda: 1)


@job(name="tests.kept_when_failed", retention={"failed": None})
def kept_when_failed(ctx):
    return ctx.step("only", lambda: 1)


from . import async_jobs, atomic_jobs  # noqa: E402, F401  (registered in every worker)


@job(name="tests.tick")
def tick(ctx, label="tick", pause=0.0):
    """A scheduled job: returns the tick it was started for, as the run saw it."""
    if pause:
        ctx.step("pause", lambda: time.sleep(pause))
    return {"label": label, "scheduled_at": ctx.scheduled_at and ctx.scheduled_at.isoformat()}


@job(name="tests.ticks_until_released")
def ticks_until_released(ctx, flag):
    """One long step that reports progress until the file ``flag`` exists."""

    def ticks():
        tick = 0
        while not os.path.exists(flag):
            tick += 1
            ctx.progress(tick, None, f"tick {tick}")
            time.sleep(0.05)
        return tick

    return ctx.step("ticks", ticks)


from . import fork_jobs  # noqa: E402, F401  (registered in worker processes too)
