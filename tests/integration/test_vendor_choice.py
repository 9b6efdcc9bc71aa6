"""The vendor is looked at once: ``storage_class()`` picks the vendor's storage class,
and no shared module branches on the vendor string."""

import re
from pathlib import Path

import pytest
from django.db import connection

import django_durable
from django_durable.notify import listen_alias
from django_durable.storage import get_storage, storage_class, storage_for
from django_durable.storage.mysql import MySQLStorage
from django_durable.storage.postgresql import PostgresStorage
from django_durable.storage.sqlite import SQLiteStorage

PACKAGE = Path(django_durable.__file__).parent
VENDOR_PACKAGES = {PACKAGE / "storage" / name for name in ("postgresql", "sqlite", "mysql")}
BRANCH = re.compile(r"vendor\s*(==|!=|\bin\b|\bnot in\b)")
CLASSES = {"postgresql": PostgresStorage, "mysql": MySQLStorage, "sqlite": SQLiteStorage}


def test_no_vendor_branches_outside_the_vendor_packages():
    found = [
        f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not VENDOR_PACKAGES & set(path.parents)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if BRANCH.search(line)
    ]
    assert found == []
    # The pattern finds what it is meant to: the vendor packages' own checks would count.
    assert BRANCH.search('if connection.vendor == "sqlite":')
    assert BRANCH.search("if vendor in VENDORS:")


@pytest.mark.django_db
def test_the_storage_is_the_vendors_class():
    chosen = CLASSES[connection.vendor]
    assert storage_class("default") is chosen
    assert type(storage_for("default")) is chosen
    assert type(get_storage()) is chosen
    # What shared code asks the class instead of the vendor.
    assert chosen.transactions_hold_database is (connection.vendor == "sqlite")
    assert chosen.notifies is (connection.vendor == "postgresql")
    assert (listen_alias() == "default") is chosen.notifies
    estimate = storage_for("default").estimated_rows(["django_durable_run"])
    assert (estimate is None) is (connection.vendor == "sqlite")
