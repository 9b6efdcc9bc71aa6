"""Suite-wide guards."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PROC = Path("/proc")
HERE = Path(__file__).resolve().parent
# Where a test file goes (README.md, "Testing against PostgreSQL and MariaDB"): needs no
# database at all -> unit/; in-process on the databases -> integration/; starts processes
# (runworker, manage.py, a browser), kills workers, stops servers, PgBouncer -> acceptance/.
LAYOUT = "tests/unit/ (no database), tests/integration/ or tests/acceptance/ (real processes)"


def pytest_sessionstart(session: pytest.Session) -> None:
    """A test file left directly in tests/ (a merge, an old branch) would run nowhere in CI."""
    stray = sorted(path.name for path in HERE.glob("test_*.py"))
    if stray:
        raise pytest.UsageError(f"move {', '.join(stray)} from tests/ into {LAYOUT}")


def _live_workers_started_here() -> dict[int, str]:
    """Descendants of this pytest process that run ``runworker`` and are not zombies."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The fields after the command name, which is in parentheses and may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    mine = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in mine} - mine
        grew = bool(found)
        mine |= found
    workers = {}
    for pid in mine - {os.getpid()}:
        try:
            command = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "runworker" in command:
            workers[pid] = command.strip()
    return workers


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test() -> Iterator[None]:
    """A worker left running by one test would claim the runs of the next ones.

    Such a worker is killed here and the test that left it fails, naming it: that is far
    easier to read than a later test timing out or finding a second worker registered.
    """
    if not PROC.is_dir():  # not Linux: nothing to look at
        yield
        return
    yield
    # A worker told to stop may still be finishing its shutdown: give it a moment.
    deadline = time.monotonic() + 5
    while (left := _live_workers_started_here()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.kill(pid, signal.SIGKILL)
    if left:
        pytest.fail(f"this test left worker processes running: {left}", pytrace=False)
