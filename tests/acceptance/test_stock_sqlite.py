"""A project made by ``django-admin startproject``, at Django's stock SQLite settings.

No ``OPTIONS``: DEFERRED transactions, Python's 5 s busy timeout, a rollback journal (not
WAL). Real ``runworker`` processes run against the project's own ``db.sqlite3``; the
test reads that file with the standard library's sqlite3. The project does not depend
on the suite's database, so these tests run once, in the SQLite run of the suite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.workers import ROOT, LoggedProcess, wait_until

pytestmark = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"),
    reason="runs once, in the SQLite run: the project has its own SQLite file",
)

JOBS = """
import os
import time

from django_durable import job


def record(ctx, step):
    # One short O_APPEND write per execution: whole lines, whichever process writes.
    with open(os.environ["STOCK_EXECUTIONS"], "a") as executions:
        executions.write(f"{ctx.run_id} {step}\\n")


def executed(ctx, step):
    with open(os.environ["STOCK_EXECUTIONS"]) as executions:
        return executions.read().count(f"{ctx.run_id} {step}\\n")


@job(name="stock.three_steps")
def three_steps(ctx, pause_in_step_2=0.0):
    def step(name):
        def body():
            record(ctx, name)
            if name == "step-2" and executed(ctx, name) == 1:
                time.sleep(pause_in_step_2)  # long enough for the test to kill the worker
            return name

        return body

    return [ctx.step(name, step(name)) for name in ("step-1", "step-2", "step-3")]
"""

# Run by a separate process with the project's settings, like a web request would.
ENQUEUE = """
import sys
import time

import django

django.setup()
from stockapp.jobs import three_steps

count, pause = int(sys.argv[1]), float(sys.argv[2])
for _ in range(count):
    print(three_steps.enqueue().id, flush=True)
    time.sleep(pause)
"""


@dataclass
class StockProject:
    path: Path
    env: dict[str, str]

    @property
    def executions_file(self) -> Path:
        return self.path / "executions.log"

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def worker(self, log_name: str, *args: str) -> Worker:
        return Worker(self, self.path / log_name, args)

    def enqueue(self, count: int, pause: float = 0.0) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", ENQUEUE, str(count), str(pause)],
            cwd=self.path,
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )

    def runs(self) -> list[dict[str, object]]:
        with closing(sqlite3.connect(self.path / "db.sqlite3", timeout=30)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT id, status, attempt, recoveries, errors, output FROM django_durable_run"
            ).fetchall()
        return [dict(row) for row in rows]

    def executions(self) -> Counter[tuple[str, str]]:
        if not self.executions_file.exists():
            return Counter()
        lines = self.executions_file.read_text().splitlines()
        return Counter(tuple(line.split()) for line in lines)  # type: ignore[misc]


class Worker(LoggedProcess):
    """``manage.py runworker`` in the stock project."""

    def __init__(self, project: StockProject, log_path: Path, args: tuple[str, ...]) -> None:
        command = [sys.executable, "manage.py", "runworker", "-v", "2", *args]
        super().__init__(log_path, command, cwd=project.path, env=project.env)

    def wait(self, timeout: float = 60) -> int:
        return super().wait(timeout)


def make_project(where: Path, durable: dict[str, object] | None = None) -> StockProject:
    """``django-admin startproject``, one app with a jobs.py, ``migrate``: nothing else."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DURABLE_", "DATABASE_URL"))
    }
    where.mkdir()
    django_admin = Path(sys.executable).parent / "django-admin"
    subprocess.run(
        [str(django_admin), "startproject", "stockproj", str(where)], env=env, check=True
    )
    app = where / "stockapp"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "jobs.py").write_text(JOBS)
    settings_file = where / "stockproj" / "settings.py"
    stock = settings_file.read_text()
    assert "OPTIONS" not in stock.split("DATABASES", 1)[1].split("}\n}", 1)[0]
    appended = '\nINSTALLED_APPS += ["django_durable", "stockapp"]\n'
    if durable is not None:
        appended += f"DURABLE = {durable!r}\n"
    settings_file.write_text(stock + appended)
    env |= {
        "DJANGO_SETTINGS_MODULE": "stockproj.settings",
        "PYTHONPATH": os.pathsep.join([str(where), str(ROOT)]),
        "STOCK_EXECUTIONS": str(where / "executions.log"),
    }
    project = StockProject(where, env)
    project.manage("migrate", "--verbosity", "0")
    return project


TROUBLE = ("storage_error", "database is locked", "database_error", "execution_error")


def trouble(log: str) -> list[str]:
    """Lines of a worker's log that report a database problem (not the system checks,
    which name 'database is locked' as what other settings avoid)."""
    return [
        line
        for line in log.splitlines()
        if " django_durable " in line and any(word in line for word in TROUBLE)
    ]


def statuses(project: StockProject) -> Counter[object]:
    return Counter(run["status"] for run in project.runs())


@pytest.fixture
def stop_later() -> Iterator[list[Worker]]:
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        if worker.process.poll() is None:
            worker.kill()


def test_sigkill_in_step_2_another_worker_finishes_without_rerunning_step_1(tmp_path, stop_later):
    # Recovery is the scenario, so only the lease is shortened.
    project = make_project(tmp_path / "project", durable={"STALE_AFTER": 2})
    pausing = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from stockapp.jobs import three_steps; "
            "print(three_steps.enqueue(pause_in_step_2=120).id)",
        ],
        cwd=project.path,
        env=project.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    first = project.worker("first.log")
    stop_later.append(first)
    wait_until(
        lambda: project.executions()[(pausing, "step-2")] == 1,
        timeout=60,
        what="step 2 of the pausing run to start",
    )
    first.kill()
    by_id = {run["id"].replace("-", ""): run for run in project.runs()}
    assert by_id[pausing.replace("-", "")]["status"] == "running"  # leased by the dead worker

    second = project.worker("second.log")
    stop_later.append(second)
    wait_until(
        lambda: statuses(project) == Counter({"completed": 1}),
        timeout=60,
        what="the run to complete",
    )
    assert second.terminate() == 0
    by_id = {run["id"].replace("-", ""): run for run in project.runs()}
    run = by_id[pausing.replace("-", "")]
    assert json.loads(str(run["output"])) == ["step-1", "step-2", "step-3"]
    assert (run["recoveries"], run["attempt"], json.loads(str(run["errors"]))) == (1, 1, [])
    executions = project.executions()
    assert executions[(pausing, "step-1")] == 1  # committed before the kill: not again
    assert executions[(pausing, "step-2")] == 2  # in flight at the kill: ran again
    assert executions[(pausing, "step-3")] == 1
    assert "event=recovered_stale_lease" in second.output
    assert trouble(first.output) == [] and trouble(second.output) == []


RUNS = 80


def test_concurrency_4_drains_runs_enqueued_meanwhile_without_recovery_or_retry(
    tmp_path, stop_later
):
    project = make_project(tmp_path / "project")  # DURABLE left out: every default
    first_half = project.enqueue(RUNS // 2)
    first_half.communicate(timeout=60)
    worker = project.worker("worker.log", "--concurrency", "4")
    stop_later.append(worker)
    # The rest arrive while the worker drains, each its own write from another process.
    second_half = project.enqueue(RUNS - RUNS // 2, pause=0.02)
    _, _ = second_half.communicate(timeout=120)
    assert second_half.returncode == 0
    started = time.monotonic()
    wait_until(
        lambda: statuses(project) == Counter({"completed": RUNS}),
        timeout=120,
        what=f"{RUNS} runs to complete",
    )
    drained_in = time.monotonic() - started
    assert worker.terminate() == 0
    runs = project.runs()
    assert len(runs) == RUNS
    assert [run for run in runs if run["recoveries"] != 0] == []
    assert [run for run in runs if run["attempt"] != 1] == []
    assert [run for run in runs if json.loads(str(run["errors"]))] == []
    executions = project.executions()
    assert len(executions) == 3 * RUNS and set(executions.values()) == {1}
    assert trouble(worker.output) == []
    print(f"drained the last runs {drained_in:.1f}s after the last enqueue")
