import pytest

from django_durable.storage.orm import ORMStorage
from django_durable.testing.conformance import StorageConformance
from tests.pgbouncer import ALIAS, pgbouncer, requires_pgbouncer  # noqa: F401


@pytest.mark.django_db(transaction=True)
class TestORMStorage(StorageConformance):
    def make_storage(self):
        return ORMStorage("default")


@requires_pgbouncer
@pytest.mark.usefixtures("pgbouncer")
@pytest.mark.django_db(transaction=True, databases=["default", ALIAS])
class TestORMStorageThroughPgBouncer(StorageConformance):
    """The same storage through PgBouncer in transaction pooling mode, DURABLE at defaults."""

    def make_storage(self):
        return ORMStorage(ALIAS)
