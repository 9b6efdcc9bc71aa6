"""The suite's settings with no database at all (Django's dummy backend refuses every
query): the in-memory storage's tests must pass with these, see tests/unit/test_no_database.py."""

from tests.settings import *  # noqa: F403

DATABASES: dict[str, dict[str, object]] = {}
