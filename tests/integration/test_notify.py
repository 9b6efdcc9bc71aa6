"""The NOTIFY an enqueue sends (PostgreSQL): after the runs' commit, in its own
transaction, without making anyone else's commit asynchronous."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_durable.notify import announce
from tests.testapp import jobs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"),
]


def setting(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


def test_the_notification_skips_the_flush_and_leaves_the_session_setting_alone():
    with connection.cursor() as cursor:
        cursor.execute("LISTEN django_durable")
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        jobs.echo.enqueue("a")
        assert not any("pg_notify" in query["sql"] for query in queries)
    (notify,) = [query["sql"] for query in queries if "pg_notify" in query["sql"]]
    assert "synchronous_commit" in notify
    # Its own transaction took the setting with it; this connection's next commit waits
    # for the flush as before.
    assert setting("synchronous_commit") == "on"
    notifies = list(connection.connection.notifies(timeout=5, stop_after=1))
    assert [(n.channel, n.payload) for n in notifies] == [("django_durable", "default")]


def test_a_connection_outside_autocommit_keeps_its_commit_synchronous():
    transaction.set_autocommit(False)
    try:
        # Outside atomic(), announce() notifies at once, inside the caller's transaction.
        announce("default", ["default"])
        assert setting("synchronous_commit") == "on"
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
