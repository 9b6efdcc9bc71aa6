"""Jobs for the atomic step tests (tests/acceptance/test_atomic_*.py), run by real workers.

Each step body appends a line to a marks file before doing anything else: the file
survives a rollback, so it counts every execution of a body, committed or not.
"""

import os
import time

from django.db import connection

from django_durable import job

from .models import Account, Execution


def mark(marks, run_id, step):
    """Append one line for this execution of ``step``; return how many came before."""
    line = f"{run_id} {step} {os.getpid()} {time.time()}\n"
    with open(marks, "a+") as file:
        file.seek(0)
        before = sum(1 for old in file if old.startswith(f"{run_id} {step} "))
        file.write(line)
    return before


def executions(marks, run_id=None, step=None):
    """The marks file's lines as (run id, step, pid), optionally for one run and step."""
    try:
        with open(marks) as file:
            rows = [line.split()[:3] for line in file if line.strip()]
    except FileNotFoundError:
        return []
    return [
        (run, name, int(pid))
        for run, name, pid in rows
        if (run_id is None or run == str(run_id)) and (step is None or name == step)
    ]


@job(name="tests.atomic.long_atomic")
def long_atomic(ctx, marks, seconds):
    """A plain step, an atomic step that holds its transaction ``seconds``, a plain step."""

    def plain(step):
        def body():
            mark(marks, ctx.run_id, step)
            Execution.objects.create(run_id=ctx.run_id, step=step, pid=os.getpid())

        return body

    def hold():
        mark(marks, ctx.run_id, "hold")
        Account.objects.create(owner=str(ctx.run_id))
        time.sleep(seconds)

    ctx.step("before", plain("before"))
    ctx.step("hold", hold, atomic=True)
    ctx.step("after", plain("after"))


@job(name="tests.atomic.plain_steps")
def plain_steps(ctx, marks, steps, pause):
    for i in range(steps):

        def body(step=f"p{i}"):
            mark(marks, ctx.run_id, step)
            time.sleep(pause)

        ctx.step(f"p{i}", body)


@job(name="tests.atomic.freezes_inside")
def freezes_inside(ctx, marks, pause):
    """An atomic step whose first execution writes, then pauses ``pause`` seconds (the
    test freezes the worker there); a later execution does not pause."""

    def write():
        first = mark(marks, ctx.run_id, "write") == 0
        Account.objects.create(owner=str(ctx.run_id))
        if first:
            time.sleep(pause)
        return "written"

    return ctx.step("write", write, atomic=True)


@job(name="tests.atomic.writes")
def writes(ctx, i):
    """Two atomic steps, each writing one row (a drain under terminated connections)."""
    for step in ("one", "two"):
        ctx.step(
            step,
            lambda step=step: Account.objects.create(owner=f"{ctx.run_id}:{step}").pk,
            atomic=True,
        )
    return i


@job(name="tests.atomic.overruns")
def overruns(ctx, seconds, sleep_in_database=False):
    """An atomic step that writes, then takes ``seconds`` (in Python or in one query)."""

    def slow():
        Account.objects.create(owner=str(ctx.run_id))
        if sleep_in_database:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("SELECT pg_sleep(%s)", [seconds])
                else:
                    cursor.execute("SELECT SLEEP(%s)", [seconds])
        else:
            time.sleep(seconds)

    ctx.step("slow", slow, atomic=True)
