import pytest

from django_durable.storage.orm import ORMStorage
from django_durable.testing.conformance import StorageConformance


@pytest.mark.django_db(transaction=True)
class TestORMStorage(StorageConformance):
    def make_storage(self):
        return ORMStorage("default")
