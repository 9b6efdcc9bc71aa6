"""The test database through PgBouncer in transaction pooling mode, where one is configured.

tests/settings.py adds the "pgbouncer" alias when DURABLE_TEST_PGBOUNCER_URL is set and
the run is on PostgreSQL; without it these tests skip.
"""

import os

import pytest
from django.conf import settings
from django.db import connection, connections

ALIAS = "pgbouncer"

ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")

# Under CI a PostgreSQL run without PgBouncer fails (in the fixture) instead of skipping.
requires_pgbouncer = pytest.mark.skipif(
    ALIAS not in settings.DATABASES and not (ON_POSTGRESQL and os.environ.get("CI")),
    reason="set DURABLE_TEST_PGBOUNCER_URL (PgBouncer in transaction mode) on PostgreSQL",
)


@pytest.fixture(scope="session")
def pgbouncer(django_db_setup, django_db_blocker):
    """The alias; at the end, frees the test database of PgBouncer's server connections.

    PgBouncer keeps its server connections open after its clients leave, and PostgreSQL
    does not drop a database anyone is connected to, so the test database could not be
    dropped after the run.
    """
    if ALIAS not in settings.DATABASES:
        pytest.fail("DURABLE_TEST_PGBOUNCER_URL is not set; .ci/run must set it")
    yield ALIAS
    with django_db_blocker.unblock():
        connections[ALIAS].close()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
