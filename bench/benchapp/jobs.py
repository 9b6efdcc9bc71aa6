"""No-op jobs the benchmark drains."""

import asyncio
import time

from django_durable import job


@job(name="bench.one_step")
def one_step(ctx):
    return ctx.step("only", lambda: None)


@job(name="bench.ten_steps")
def ten_steps(ctx):
    for i in range(10):
        ctx.step(f"step-{i}", lambda: None)


@job(name="bench.many_steps")
def many_steps(ctx, steps):
    for i in range(steps):
        ctx.step(f"step-{i}", lambda: None)


@job(name="bench.first_step_time")
def first_step_time(ctx):
    """Returns when its first step began, for pickup latency."""
    return ctx.step("started", time.time)


@job(name="bench.pickup")
def pickup(ctx, key):
    """Records when its first step began, for pickup latency (see bench/pickup.py)."""
    from bench.pickup import record

    ctx.step("pickup", lambda: record(key))


@job(name="bench.async_sleep")
async def async_sleep(ctx, seconds):
    """One step awaiting a sleep: an I/O-bound call (see bench/async_io.py)."""

    async def call():
        await asyncio.sleep(seconds)

    await ctx.step("call", call)
