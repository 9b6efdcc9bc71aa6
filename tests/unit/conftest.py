"""tests/unit/ holds the tests that need no database at all (the engine on
InMemoryStorage, pure functions, settings checks): they must pass with
``tests.settings_no_database``, where no database is configured (test_no_database.py
proves it). A test here that asks for the database fails at once, naming itself."""

from __future__ import annotations

import pytest

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup", "live_server", "client"}


@pytest.fixture(autouse=True)
def no_database_in_unit_tests(request: pytest.FixtureRequest) -> None:
    asked = DATABASE_FIXTURES & set(request.fixturenames)
    if request.node.get_closest_marker("django_db") is not None or asked:
        pytest.fail(
            "tests/unit/ runs with no database: move this test to tests/integration/"
            + (f" (it asks for {sorted(asked)})" if asked else " (it is marked django_db)"),
            pytrace=False,
        )
