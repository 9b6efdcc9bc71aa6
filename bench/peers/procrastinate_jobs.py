"""The no-op jobs as Procrastinate tasks (sync functions, run in the worker's threads)."""

from procrastinate.contrib.django import app


@app.task(name="one_step")
def one_step() -> None:
    return None


@app.task(name="pickup")
def pickup(key: str) -> None:
    from bench.pickup import record

    record(key)
