import pytest
from django.db import connection

from django_durable.storage import storage_for
from django_durable.storage.orm import ORMStorage
from django_durable.testing.conformance import StorageConformance
from tests.pgbouncer import ALIAS, pgbouncer, requires_pgbouncer  # noqa: F401


@pytest.mark.django_db(transaction=True)
class TestDatabaseStorage(StorageConformance):
    """The storage get_storage() chooses for the test database."""

    def make_storage(self):
        return storage_for("default")


@pytest.mark.django_db(transaction=True)
class TestPortableStorageOnPostgreSQL(StorageConformance):
    """The portable ORM code, which PostgresStorage inherits, on PostgreSQL too."""

    @pytest.fixture(autouse=True)
    def _postgresql_only(self):
        if connection.vendor != "postgresql":
            pytest.skip("the portable storage is the chosen one here: TestDatabaseStorage")

    def make_storage(self):
        return ORMStorage("default")


@requires_pgbouncer
@pytest.mark.usefixtures("pgbouncer")
@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
class TestDatabaseStorageThroughPgBouncer(StorageConformance):
    """The same storage through PgBouncer in transaction pooling mode, DURABLE at defaults."""

    def make_storage(self):
        return storage_for(ALIAS)
