"""PostgreSQL: an enqueue in autocommit announces its run in the INSERT statement itself
(one round trip and one commit), a run that waits for its time is not announced, and an
enqueue in a transaction is announced when it commits."""

import pytest
from django.db import connection, transaction

from django_durable.notify import CHANNEL
from tests.testapp import jobs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's"),
]


@pytest.fixture
def listening():
    import psycopg

    connection.ensure_connection()
    wanted = ("dbname", "user", "password", "host", "port")
    params = {k: v for k, v in connection.get_connection_params().items() if k in wanted}
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f'LISTEN "{CHANNEL}"')

        def received():
            return [note.payload for note in listener.notifies(timeout=0.5)]

        yield received


def test_an_enqueue_in_autocommit_is_announced_to_its_queue(listening):
    jobs.echo.using(queue_name="mail").enqueue()
    assert listening() == ["mail"]


def test_a_run_that_waits_for_its_time_is_not_announced(listening):
    handle = jobs.echo.using(run_after=3600).enqueue()
    assert handle.status == "waiting"
    assert listening() == []


def test_an_enqueue_in_a_transaction_is_announced_at_commit_only(listening):
    with transaction.atomic():
        jobs.echo.using(queue_name="mail").enqueue()
        assert listening() == []
    assert listening() == ["mail"]
    with pytest.raises(RuntimeError), transaction.atomic():
        jobs.echo.using(queue_name="mail").enqueue()
        raise RuntimeError
    assert listening() == []
