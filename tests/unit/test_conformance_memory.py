"""The whole storage conformance suite on ``InMemoryStorage``, with no database.

Nothing here is marked ``django_db``, so pytest-django refuses any database access: a
scenario that reached for the database instead of the storage under test would fail.
"""

from contextlib import AbstractContextManager

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from django_durable.storage.base import Storage
from django_durable.testing import InMemoryStorage
from django_durable.testing.conformance import StorageConformance


@pytest.fixture(autouse=True)
def no_database(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("django_db") is None


class TestInMemoryStorage(StorageConformance):
    def make_storage(self) -> Storage:
        return InMemoryStorage()

    def caller_transaction(self, storage: Storage) -> AbstractContextManager[object]:
        assert isinstance(storage, InMemoryStorage)
        return storage.atomic()


def test_the_database_is_out_of_reach() -> None:
    # pytest-django's guard, or Django's dummy backend with no database configured.
    with pytest.raises((RuntimeError, ImproperlyConfigured)):
        connection.ensure_connection()
