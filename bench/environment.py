"""The benchmark's own virtual environment, .venv-bench: made once, then re-entered.

dev.py starts bench/run.py with the package's venv, which lacks the peers; run.py calls
``reexec_in_bench_venv()`` first, which installs bench/requirements.txt and the package
(editable) into .venv-bench when they changed, and re-executes the same command there.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-bench"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ROOT / "bench" / "requirements.txt"


def _wanted() -> str:
    parts = [REQUIREMENTS.read_bytes(), (ROOT / "pyproject.toml").read_bytes()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure() -> Path:
    """The venv's python, with the pinned requirements and the package installed."""
    if not PYTHON.exists():
        print("== creating .venv-bench", flush=True)
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != _wanted():
        print("== installing bench/requirements.txt into .venv-bench", flush=True)
        pip = [str(PYTHON), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(REQUIREMENTS), "-e", f"{ROOT}[postgres]"], check=True)
        stamp.write_text(_wanted())
    return PYTHON


def reexec_in_bench_venv() -> None:
    if in_bench_venv():
        return
    python = ensure()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    os.execve(python, [str(python), *sys.argv], env)
