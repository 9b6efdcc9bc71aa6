"""Jobs the fork tests run: each fails in a late step until its "fix is deployed".

The fix is ``FIXED["on"]`` in-process, or ``DURABLE_TEST_FORK_FIXED=1`` in the
environment of a worker subprocess started after the fix (a deploy).
"""

import os

from django_durable import job

from .jobs import counted

FIXED = {"on": False}


def fixed():
    return FIXED["on"] or os.environ.get("DURABLE_TEST_FORK_FIXED") == "1"


def buggy(label):
    """The body of the step that has a bug until the fix is deployed."""

    def body():
        if not fixed():
            raise RuntimeError(f"bug in {label}")
        return f"{label} fixed"

    return body


@job(name="tests.fork_three_steps")
def fork_three_steps(ctx, n=1):
    one = ctx.step("one", counted(ctx, "one", lambda: n))
    two = ctx.step("two", counted(ctx, "two", lambda: n * 2))
    three = ctx.step("three", counted(ctx, "three", buggy("three")))
    return [one, two, three]


@job(name="tests.fork_child")
def fork_child(ctx, i):
    return ctx.step("square", counted(ctx, "square", lambda: i * i))


@job(name="tests.fork_parent")
def fork_parent(ctx):
    first = ctx.wait_for_children([ctx.start_child(fork_child, i=2)])
    second = ctx.wait_for_children([ctx.start_child(fork_child, i=3)])
    third = ctx.step("after", counted(ctx, "after", buggy("after")))
    return [*first, *second, third]


@job(name="tests.fork_events")
def fork_events(ctx):
    first = ctx.wait_for_event("go")
    ctx.step("between", counted(ctx, "between"))
    second = ctx.wait_for_event("go")
    last = ctx.step("last", counted(ctx, "last", buggy("last")))
    return [first, second, last]
