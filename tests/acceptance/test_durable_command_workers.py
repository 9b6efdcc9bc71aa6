"""``manage.py durable`` in its own process, beside a real worker: ``workers`` lists it,
and the exit codes are the process's (tests/integration/test_durable_command.py has the rest)."""

import json
import subprocess
import sys

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from tests.testapp import jobs
from tests.workers import ROOT, WorkerProcess, process_env, wait_until

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_workers_lists_live_workers_and_exit_codes_are_real(tmp_path):
    env = process_env()

    def command(*args):
        return subprocess.run(
            [sys.executable, "-m", "django", "durable", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    run = jobs.sleeper.enqueue(30)
    worker = WorkerProcess(tmp_path / "worker.log", "--concurrency", "2")
    try:
        wait_until(lambda: Run.objects.get(pk=run.id).status == RunStatus.WAITING or (
            Run.objects.get(pk=run.id).status == RunStatus.RUNNING
        ), what="the run to start")  # fmt: skip
        listed = command("workers", "--json")
        assert listed.returncode == 0, listed.stderr
        [live] = json.loads(listed.stdout)
        assert live["pid"] == worker.process.pid and live["concurrency"] == 2
    finally:
        worker.terminate()
    assert command("retry", str(run.id)).returncode == 1
    assert command("show", "nope").returncode == 2
    assert command("list", "--bogus").returncode == 2
    assert command("list").returncode == 0
