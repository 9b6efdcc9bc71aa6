"""CPU time of PostgreSQL's server processes, from /proc (Linux).

Backends come and go (every worker opens its own connections), so the total is the
postmaster's own time, plus the time of its children that already exited (the kernel
adds a reaped child's time to its parent's cutime/cstime), plus that of live children.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces; fields after it are space separated.
    return text[text.rindex(")") + 2 :].split()


def _children(parent: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == parent:
                    pids.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue
    return pids


def server_cpu_seconds(postmaster: int) -> float:
    """User + system CPU seconds the server has used so far, exited backends included."""
    # proc(5) fields 14-17 (utime, stime, cutime, cstime) are indexes 11-14 after the name.
    own = _stat(postmaster)
    ticks = sum(int(own[i]) for i in (11, 12, 13, 14))
    for pid in _children(postmaster):
        try:
            child = _stat(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile: its time moved to the postmaster's cutime
        ticks += int(child[11]) + int(child[12])
    return ticks / TICKS


def process_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")
