"""A throwaway PostgreSQL server on 127.0.0.1 for the benchmark (fsync left on)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


class ThrowawayPostgres:
    def __init__(self, port: int = 55432) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="durable-bench-pg-"))
        self.data = self.root / "data"
        self.url = self.database_url("bench")

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def version(self) -> str:
        return self.psql("SHOW server_version")

    def _as_postgres(self, *command: str | Path) -> list[str]:
        # initdb and the server refuse to run as root.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*prefix, *map(str, command)]

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
        subprocess.run(
            self._as_postgres(
                PG_BIN / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--auth=trust",
                "--no-instructions",
            ),
            check=True,
            capture_output=True,
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\nmax_connections = 200\n"
                # Statements per job (pg_counters.py).
                "shared_preload_libraries = 'pg_stat_statements'\n"
            )
        subprocess.run(
            self._as_postgres(
                PG_BIN / "pg_ctl", "-D", self.data, "-l", self.root / "server.log", "-w", "start"
            ),
            check=True,
            capture_output=True,
        )
        self.psql("CREATE DATABASE bench", database="postgres")

    def psql(self, sql: str, database: str = "bench") -> str:
        result = subprocess.run(
            [
                PG_BIN / "psql",
                "-X",
                "-At",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def server_pids(self) -> list[int]:
        """The postmaster and every backend (for the server's CPU time)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True, text=True
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def pgbench(self, script: str, clients: int, seconds: int, database: str = "bench") -> float:
        """Transactions per second of ``script`` at ``clients`` connections."""
        script_path = self.root / "script.sql"
        script_path.write_text(script)
        result = subprocess.run(
            [
                PG_BIN / "pgbench",
                "-n",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-f",
                script_path,
                "-c",
                str(clients),
                "-j",
                str(clients),
                "-T",
                str(seconds),
                database,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        for line in result.stdout.splitlines():
            if line.startswith("tps ="):
                return float(line.split()[2])
        raise RuntimeError(f"no tps in pgbench output:\n{result.stdout}")

    def stop(self) -> None:
        subprocess.run(
            self._as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"),
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)
