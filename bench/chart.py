"""The chart for docs/: jobs/s of each system and pickup latency (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

LABELS = {
    "django-durable": "django-durable",
    "django-tasks-db": "django-tasks-db",
    "procrastinate": "Procrastinate",
    "dbos": "DBOS",
}


def draw(results: dict, path: Path) -> None:
    systems = results["systems"]
    names = [LABELS.get(key, key) for key in systems]
    one = [s["steps_1"]["runs_per_s"] for s in systems.values()]
    ten = [s.get("steps_10", {}).get("runs_per_s", 0) for s in systems.values()]
    p50 = [s["pickup"]["p50_ms"] for s in systems.values()]
    p99 = [s["pickup"]["p99_ms"] for s in systems.values()]
    positions = range(len(names))
    width = 0.38
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

    left.bar([p - width / 2 for p in positions], one, width, label="1-step jobs")
    left.bar([p + width / 2 for p in positions], ten, width, label="10-step jobs")
    for p, value in zip(positions, one, strict=True):
        left.annotate(f"{value:,.0f}", (p - width / 2, value), ha="center", va="bottom", fontsize=8)
    for p, value in zip(positions, ten, strict=True):
        if value:
            left.annotate(
                f"{value:,.0f}", (p + width / 2, value), ha="center", va="bottom", fontsize=8
            )
    left.set_xticks(list(positions), names)
    left.set_ylabel("jobs per second (higher is better)")
    left.set_title("Throughput, same server, same worker budget")
    left.legend()

    right.bar([p - width / 2 for p in positions], p50, width, label="p50")
    right.bar([p + width / 2 for p in positions], p99, width, label="p99")
    right.set_yscale("log")
    right.set_xticks(list(positions), names)
    right.set_ylabel("ms, enqueue commit to job start (log scale)")
    right.set_title("Pickup latency (lower is better)")
    right.legend()

    machine = results["machine"]
    figure.suptitle(
        f"{machine['cpu']}, {machine['cores']} cores, PostgreSQL {machine['postgresql']}",
        fontsize=9,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
