"""Start real ``runworker`` processes against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


class LoggedProcess:
    """A subprocess whose output goes to ``log_path``."""

    def __init__(
        self, log_path: Path, command: list[str], *, cwd: Path, env: dict[str, str]
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115  (closed in wait())
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        self.process.kill()
        self.wait()

    def terminate(self) -> int:
        self.process.terminate()
        return self.wait()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    @property
    def output(self) -> str:
        return self.log_path.read_text()


def process_env(**env: str) -> dict[str, str]:
    """The environment of a subprocess on the test suite's settings and test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        # The test database, which pytest-django created under another name.
        "DURABLE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        **env,
    }


class WorkerProcess(LoggedProcess):
    """``runworker`` on the test suite's settings and test database."""

    def __init__(self, log_path: Path, *args: str, stale_after: float = 2.0, **env: str) -> None:
        environment = process_env(DURABLE_TEST_STALE_AFTER=str(stale_after), **env)
        command = [sys.executable, "-m", "django", "runworker", "-v", "2", *args]
        super().__init__(log_path, command, cwd=ROOT, env=environment)


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
