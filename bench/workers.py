"""A group of worker processes started from one command line, logs kept per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class WorkerGroup:
    def __init__(
        self, command: list[str], count: int, env: dict[str, str], log_dir: str, name: str
    ) -> None:
        self.command = [sys.executable, *command]
        self.count = count
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self.logs = [Path(log_dir) / f"{name}-{i}.log" for i in range(count)]
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for log in self.logs:
            with open(log, "w") as out:
                self.processes.append(
                    subprocess.Popen(
                        self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
                    )
                )

    def check_alive(self) -> None:
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"worker exited ({process.returncode}):\n{log.read_text()}")

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes = []
