"""The same measurements for every system, each in a process of its own.

    python -m bench.driver MODULE OPTIONS.json RESULT.json

MODULE (``bench.durable`` or ``bench.peers.*``) has ``make_system(options)`` returning an
object with the methods of ``System`` below; its process sets up its own Django settings,
so systems never share one interpreter. The result is a JSON dict that bench/report.py
reads.
"""

from __future__ import annotations

import importlib
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from bench import pg_counters
from bench.cpu import server_cpu_seconds
from bench.pickup import PickupWatch
from bench.workers import WorkerGroup


class System(Protocol):
    name: str
    version: str
    layout: str
    bulk_note: str
    step_counts: tuple[int, ...]
    pickup_url: str

    def workers(self) -> WorkerGroup: ...
    def enqueue_each(self, count: int) -> None: ...
    def enqueue_bulk(self, count: int, steps: int) -> None: ...
    def enqueue_pickup(self, key: str) -> None: ...
    def completed(self) -> int: ...
    def reset(self) -> None: ...


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_completed(system: System, count: int, workers: WorkerGroup) -> float:
    """Block until ``count`` jobs completed; return the time (perf_counter) it happened."""
    deadline = time.monotonic() + 120 + count / 5
    while (done := system.completed()) < count:
        workers.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{system.name}: {done} of {count} jobs completed")
        time.sleep(0.05)
    return time.perf_counter()


def drain(
    system: System, workers: WorkerGroup, runs: int, steps: int, postmaster: int, url: str
) -> dict:
    """Enqueue ``runs`` in one transaction while the workers idle, then time the drain."""
    system.reset()
    pg_counters.checkpoint(url)
    time.sleep(0.5)  # let idle workers settle into waiting
    counters = pg_counters.read(url)
    cpu_before = server_cpu_seconds(postmaster)
    started = time.perf_counter()
    system.enqueue_bulk(runs, steps)
    committed = time.perf_counter()
    finished = wait_completed(system, runs, workers)
    cpu = server_cpu_seconds(postmaster) - cpu_before
    return {
        "enqueue_bulk_per_s": runs / (committed - started),
        "runs_per_s": runs / (finished - committed),
        "pg_cpu_ms": cpu * 1000 / runs,
        **pg_counters.per_run(url, counters, runs),
    }


def median_of(rounds: list[dict]) -> dict:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def pickup_latencies(system: System, samples: int) -> list[float]:
    watch = PickupWatch(system.pickup_url)
    try:
        latencies = []
        for _ in range(samples):
            key = uuid.uuid4().hex
            system.enqueue_pickup(key)
            committed = time.time()
            latencies.append((watch.wait(key) - committed) * 1000)
            # A random pause longer than a poll interval (1 s for the polling workers), so
            # enqueues do not fall in step with the pollers' sleeps, for good or ill.
            time.sleep(random.uniform(0.02, 1.02))
        return latencies
    finally:
        watch.close()


def measure(system: System, options: dict[str, Any], extras: Any = None) -> dict[str, Any]:
    postmaster = options["postmaster"]
    result: dict[str, Any] = {
        "name": system.name,
        "version": system.version,
        "layout": system.layout,
        "bulk_note": system.bulk_note,
    }
    say = lambda message: print(f"   {system.name}: {message}", flush=True)  # noqa: E731
    system.reset()
    count = options["enqueue_runs"]
    started = time.perf_counter()
    system.enqueue_each(count)
    result["enqueue_each_per_s"] = count / (time.perf_counter() - started)
    say(f"enqueue one by one {result['enqueue_each_per_s']:,.0f}/s")
    workers = system.workers()
    workers.start()
    try:
        wait_completed(system, count, workers)  # also the warm-up: workers are up
        for steps in system.step_counts:
            runs = options["runs"] if steps == 1 else options["runs_10"]
            rounds = [
                drain(system, workers, runs, steps, postmaster, options["url"])
                for _ in range(options["rounds"])
            ]
            result[f"steps_{steps}"] = median_of(rounds) | {"runs": runs}
            say(f"{steps}-step {result[f'steps_{steps}']['runs_per_s']:,.0f} runs/s")
        system.reset()
        samples = options["latency_samples"]
        if system.name != "django-durable":
            samples = options["peer_latency_samples"]
        latencies = pickup_latencies(system, samples)
        result["pickup"] = {
            "samples": len(latencies),
            "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99),
            "mean_ms": statistics.mean(latencies),
        }
        say(f"pickup p50 {result['pickup']['p50_ms']:.1f} ms")
        if extras is not None:
            extras(system, workers, options, result)
    finally:
        workers.stop()
    return result


def main() -> None:
    module_name, options_path, result_path = sys.argv[1:4]
    options = json.loads(Path(options_path).read_text())
    module = importlib.import_module(module_name)
    system = module.make_system(options)
    result = measure(system, options, getattr(module, "extras", None))
    if hasattr(module, "after"):
        module.after(system, options, result)
    with open(result_path, "w") as out:
        json.dump(result, out, indent=2)


if __name__ == "__main__":
    main()
