"""The example project's demo runs end to end, in a subprocess of its own, on SQLite.

The demo starts real ``runworker`` processes, kills one with SIGKILL inside a step and
checks itself that no finished step ran again; this test checks its verdict and output.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "example_project" / "manage.py"


def manage(*args, env):
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_resumes_the_killed_run_without_rerunning_finished_steps(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'example.sqlite3'}"

    migrate = manage("migrate", "--verbosity", "0", env=env)
    assert migrate.returncode == 0, migrate.stderr

    demo = manage("demo", env=env)
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output
    assert "Check passed" in output
    assert "ERROR" not in output
    # The step that was killed ran once in each worker, and finished steps did not re-run.
    assert re.search(r"worker 1: order \d+ +create-shipment  <- killed here", output), output
    assert re.search(r"worker 2: order \d+ +create-shipment  <- resumed here", output), output
    journal = output.split("The interrupted run's journal", 1)[1]
    assert re.search(r"step reserve-stock +completed +worker 1: 1\n", journal), journal
    assert re.search(r"step create-shipment +completed +worker 1: 1, worker 2: 1\n", journal)
    # What the admin shows afterwards: completed, failed and waiting runs.
    assert re.search(r"Runs in the database: 1 waiting, \d+ completed, 1 failed\.", output)
    assert "user admin, password durable-demo" in output
    assert "STALE_AFTER shortened to 3 s" in output
