"""The tests on InMemoryStorage pass with no database configured at all."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODULES = ["tests/test_conformance_memory.py", "tests/test_memory_engine.py"]


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="independent of the database: run on SQLite"
)
def test_in_memory_tests_pass_with_no_database_configured():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_no_database"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *MODULES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
