"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def describe(postgres_version: str) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "ram": f"{kib / 1024 / 1024:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "postgresql": postgres_version.split()[0],
        "python": sys.version.split()[0],
        "load": ", ".join(f"{load:.1f}" for load in os.getloadavg()),
    }
