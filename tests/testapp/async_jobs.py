"""``async def`` jobs the test suite runs, in-process and in real worker subprocesses."""

import asyncio
import os
import time

from asgiref.sync import sync_to_async

from django_durable import job

from .models import Account, Execution


async def record(ctx, step):
    """Commit one execution of ``step`` through Django's async ORM."""
    await Execution.objects.acreate(run_id=ctx.run_id, step=step, pid=os.getpid(), at=time.time())


@job(name="tests.async_steps")
async def async_steps(ctx, pause_in_step_2=0.0):
    """An async step, a plain step and an async step again."""

    async def first():
        await record(ctx, "step-1")
        return "step-1"

    def second():  # a plain function: it runs on a thread of its own
        Execution.objects.create(run_id=ctx.run_id, step="step-2", pid=os.getpid())
        if Execution.objects.filter(run_id=ctx.run_id, step="step-2").count() == 1:
            time.sleep(pause_in_step_2)  # long enough for the test to kill the worker
        return "step-2"

    async def third():
        await record(ctx, "step-3")
        return "step-3"

    ctx.log.info("starting")
    results = [await ctx.step("step-1", first), await ctx.step("step-2", second)]
    await ctx.progress(2, 3, "two done")
    results.append(await ctx.step("step-3", third))
    return results


@job(name="tests.async_sleeper")
async def async_sleeper(ctx, seconds=1.0, mark=None):
    """One step awaiting ``asyncio.sleep``: an I/O-bound call, for concurrency. With
    ``mark`` (a path), the step creates that file before it awaits."""

    async def call():
        if mark:
            open(mark, "w").close()
        await asyncio.sleep(seconds)
        return os.getpid()

    return await ctx.step("call", call)


@job(name="tests.async_atomic")
async def async_atomic(ctx, owner, fail=False, pause_once_at=None):
    """An atomic async step: its ORM writes commit with its checkpoint, or not at all.
    With ``pause_once_at`` (a path), the first execution creates that file after writing
    and waits, long enough for a test to kill the worker."""

    async def open_account():
        account = await Account.objects.acreate(owner=owner)
        await sync_to_async(Account.objects.create)(owner=f"{owner}-sync")
        if pause_once_at and not os.path.exists(pause_once_at):
            open(pause_once_at, "w").close()  # a marker the test waits for
            await asyncio.sleep(120)
        if fail:
            raise ValueError("refused after writing")
        return account.pk

    return await ctx.step("open-account", open_account, atomic=True)


@job(name="tests.async_waits")
async def async_waits(ctx):
    """A sleep, an event and a child, awaited."""
    await ctx.sleep("nap", 0.2)
    payload = await ctx.wait_for_event("go", timeout=60)
    child = await ctx.start_child(async_steps)
    (output,) = await ctx.wait_for_children([child])
    return {"payload": payload, "child": output}


@job(name="tests.async_until_cancelled")
async def async_until_cancelled(ctx):
    """Steps until someone cancels the run; each step waits a little."""
    for index in range(10_000):
        await ctx.step(f"tick-{index}", lambda: asyncio.sleep(0.05))
