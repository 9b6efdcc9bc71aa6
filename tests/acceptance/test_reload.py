"""runworker --reload: a code change stops the worker as SIGTERM does, and a new process
takes over at once."""

import os
import re
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_durable import RunStatus
from django_durable.models import Run
from tests.testapp import jobs
from tests.workers import ROOT, WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WATCHED = ROOT / "tests" / "testapp" / "jobs.py"  # imported by the worker, so watched


def started_pids(worker):
    return [
        int(pid) for pid in re.findall(r"worker=[^:\s]+:(\d+):\S+ event=started", worker.output)
    ]


def test_a_code_change_releases_the_running_run_to_the_new_process(tmp_path):
    # Leases outlast the test: the run can only move on if the old process released it.
    worker = WorkerProcess(tmp_path / "w.log", "--reload", stale_after=120)
    try:
        wait_until(lambda: len(started_pids(worker)) == 1, what="the worker to start")
        handle = jobs.three_steps.enqueue(pause_in_step_2=2)
        wait_until(lambda: Run.objects.get(pk=handle.id).status == RunStatus.RUNNING)
        time.sleep(0.5)  # inside step 2
        os.utime(WATCHED)  # what saving the file in an editor does
        wait_until(lambda: "event=reloading" in worker.output, what="the reload")
        wait_until(lambda: len(started_pids(worker)) == 2, what="the new process")
        wait_until(
            lambda: Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED,
            what="the run to complete in the new process",
        )
        run = Run.objects.get(pk=handle.id)
        assert run.recoveries == 0 and run.output == ["step-1", "step-2", "step-3"]
        old, new = started_pids(worker)
        assert old != new
    finally:
        worker.terminate()
    time.sleep(0.5)
    for pid in started_pids(worker):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no worker outlives the command


def test_reload_refuses_burst_and_max_runs():
    for option in (["--burst"], ["--max-runs", "3"]):
        with pytest.raises(CommandError, match="--reload keeps the worker running"):
            call_command("runworker", "--reload", *option)
