"""Every test in tests/unit/ passes with no database configured at all.

``dev.py test`` runs tests/unit/ on ``tests.settings_no_database``: there this test checks
that it is such a run. Run on the ordinary settings, it starts that run itself.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()
DUMMY = "django.db.backends.dummy"  # what Django puts in place of no DATABASES
NAME = "test_the_unit_tests_pass_with_no_database_configured"


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="independent of the database: run on SQLite"
)
def test_the_unit_tests_pass_with_no_database_configured():
    if settings.DATABASES["default"]["ENGINE"] == DUMMY:
        # This session is the run without a database: every other test here is in it.
        assert connection.settings_dict["ENGINE"] == DUMMY and len(settings.DATABASES) == 1
        return
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_no_database"}
    # This test would start the same run again.
    own = f"{HERE.relative_to(ROOT)}::{NAME}"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, str(HERE.parent), "--deselect", own],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    assert "error" not in summary, summary
