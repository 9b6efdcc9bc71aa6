"""django.tasks tasks the suite runs through DurableBackend (the "durable" TASKS alias),
named as in Django's own tests/tasks/ suite. Autodiscovered in workers like jobs.py."""

import time
from datetime import timedelta

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task

from .jobs import counted, executions

BACKEND = "durable"


@task(backend=BACKEND)
def noop_task(*args, **kwargs):
    return None


@task(backend=BACKEND)
def calculate_meaning_of_life():
    return 42


@task(backend=BACKEND)
def failing_task_value_error():
    raise ValueError("This task failed due to ValueError")


@task(backend=BACKEND)
def failing_task_system_exit():
    raise SystemExit("This task failed due to SystemExit")


@task(backend=BACKEND)
def failing_task_keyboard_interrupt():
    raise KeyboardInterrupt("This task failed due to KeyboardInterrupt")


@task(backend=BACKEND)
def complex_return_value():
    # Not JSON: the run fails when its output is stored.
    return {"set": {1, 2, 3}}


@task(backend=BACKEND, takes_context=True)
def get_task_id(context):
    return context.task_result.id


@task(backend=BACKEND, takes_context=True)
def test_context(context, attempt):
    assert context.attempt == attempt
    assert context.task_result.status == "RUNNING"
    return {"attempt": context.attempt, "run_id": str(context.durable.run_id)}


@task(backend=BACKEND, takes_context=True)
def two_checkpoints(context, pause=0.0):
    """Two counted steps, then a third that pauses the first time it runs: a kill during
    the pause must not run the first two again."""
    ctx = context.durable
    first = ctx.step("first", counted(ctx, "first"))
    second = ctx.step("second", counted(ctx, "second"))

    def paused():
        if executions(ctx.run_id, "third") == 1:
            time.sleep(pause)
        return "third"

    third = ctx.step("third", counted(ctx, "third", paused))
    return [first, second, third]


@task(backend=BACKEND, queue_name="other")
def other_queue_task():
    return "other"


@task(backend=BACKEND, takes_context=True)
def nap(context):
    context.durable.sleep("nap", timedelta(hours=1))
    return "rested"


@task(backend=BACKEND, takes_context=True)
def flaky_task(context):
    # OPTIONS give it a retry policy of two attempts (tests/settings.py).
    if context.attempt == 1:
        raise ConnectionError("the first attempt fails")
    return context.attempt


@task(backend=BACKEND, takes_context=True)
def hang(context):
    # OPTIONS give it a timeout of half a second, enforced before each operation.
    context.durable.step("slow", lambda: time.sleep(1.5))
    context.durable.step("never", lambda: "reached")


@task(backend=BACKEND, takes_context=True)
def hang_until_cancelled(context):
    # A long loop that asks between chunks of work whether it was cancelled.
    while True:
        context.durable.check_cancelled()
        time.sleep(0.05)


@task(backend=BACKEND, takes_context=True)
def exits_in_a_step(context):
    def interrupted():
        raise KeyboardInterrupt("inside a step")

    context.durable.step("interrupted", interrupted)


@task(backend=BACKEND)
async def async_meaning_of_life():
    return 42


@task(backend=BACKEND, takes_context=True)
async def async_checkpoints(context):
    """An async task whose context's ``durable`` is the awaited run context."""
    ctx = context.durable

    async def first():
        return "first"

    return [await ctx.step("first", first), context.task_result.status]
