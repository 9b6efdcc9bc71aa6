"""PostgreSQL: the claim and step checkpoints as server-side prepared statements."""

import logging
import re

import pytest
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from django_durable.models import Run
from django_durable.status import RunStatus, StepKind, StepStatus
from django_durable.storage.base import Checkpoint, NewRun, StepRecord
from django_durable.storage.postgresql import PostgresStorage, prepared
from django_durable.storage.postgresql.claim import _claim_sql, _queue_filter

psycopg = pytest.importorskip("psycopg")

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
    pytest.mark.django_db(transaction=True),
]

JOB = "pg.job"


@pytest.fixture
def storage():
    connection.close()  # a fresh session: no prepared statements yet
    yield PostgresStorage("default")
    connection.close()
    prepared._not_preparing.discard("default")  # a test's fallback ends with it


def turned_off(caplog):
    return [
        r.getMessage() for r in caplog.records if "event=prepared_statements_off" in r.getMessage()
    ]


def drop_prepared_statements():
    """What a transaction pooler does: the next server connection lacks them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE NOT from_sql")
        for (name,) in cursor.fetchall():
            cursor.execute(f'DEALLOCATE "{name}"')


def prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
        return [row[0] for row in cursor.fetchall()]


def claims_prepared():
    return [sql for sql in prepared_statements() if "FOR UPDATE SKIP LOCKED" in sql]


def enqueue(storage, count=1, **overrides):
    values = {"job_name": JOB, "queue_name": "default", "priority": 0, "args": [], "kwargs": {}}
    return [storage.enqueue(NewRun(**(values | overrides)))[0].id for _ in range(count)]


def claim(storage, limit=1, queues=None):
    return storage.claim(owner="w1", job_names=[JOB], queues=queues, limit=limit)


def test_the_claim_is_prepared_once_and_reused(storage):
    first, second = enqueue(storage, 2)
    assert [item.run.id for item in claim(storage)] == [first]
    assert len(claims_prepared()) == 1
    (claimed,) = claim(storage)
    assert claimed.run.id == second
    assert claimed.run.status == RunStatus.RUNNING
    assert claimed.fresh
    assert len(claims_prepared()) == 1  # the same statement, executed again


def test_a_step_checkpoint_is_prepared(storage):
    enqueue(storage)
    (claimed,) = claim(storage)
    checkpoint = Checkpoint()
    checkpoint.add(
        StepRecord(position=0, kind=StepKind.STEP, name="a", status=StepStatus.COMPLETED), False
    )
    storage.checkpoint(claimed.lease, checkpoint)
    inserts = [sql for sql in prepared_statements() if "FOR SHARE OF" in sql]
    assert len(inserts) == 1
    assert [step.name for step in storage.load_journal(claimed.run.id)] == ["a"]


def test_the_claim_is_prepared_again_after_a_schema_change(storage):
    _, second = enqueue(storage, 2)
    claim(storage)
    assert claims_prepared()
    # Another session changes a returned column's type: the prepared statement's result
    # type no longer matches ("cached plan must not change result type").
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE django_durable_run ALTER COLUMN queue_name TYPE varchar(101)"
            )
        (claimed,) = claim(storage)
        assert claimed.run.id == second
    finally:
        with other.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE django_durable_run ALTER COLUMN queue_name TYPE varchar(100)"
            )
        other.close()


def test_a_lost_prepared_statement_runs_unprepared_and_preparing_stops(storage, caplog):
    caplog.set_level(logging.WARNING, logger="django_durable")
    first, second, third = enqueue(storage, 3)
    claim(storage)
    drop_prepared_statements()
    assert not claims_prepared()
    # The claim the server refused ran again unprepared: the run is claimed once.
    (claimed,) = claim(storage)
    assert claimed.run.id == second
    assert Run.objects.filter(status=RunStatus.RUNNING).count() == 2
    checkpoint = Checkpoint()
    checkpoint.add(
        StepRecord(position=0, kind=StepKind.STEP, name="a", status=StepStatus.COMPLETED), False
    )
    storage.checkpoint(claimed.lease, checkpoint)
    assert [item.run.id for item in claim(storage)] == [third]
    assert prepared_statements() == []  # nothing is prepared any more, on any connection
    connection.close()
    assert len(claim(storage)) == 0 and prepared_statements() == []
    (line,) = turned_off(caplog)
    assert "alias=default" in line
    assert re.search(r'reason=prepared statement "_pg3_\d+" does not exist', line), line
    assert [step.name for step in storage.load_journal(second)] == ["a"]
    assert first != second


def test_each_connection_names_its_statements_apart(storage):
    # Through a pooler, a server connection holding another client's statement of the
    # same name would run that statement with our parameters.
    other = connections.create_connection("default")
    try:
        names = []
        for wrapper in (connection, other):
            cursor = prepared._raw_cursor(wrapper)
            cursor.execute("SELECT 1", prepare=True)
            with wrapper.cursor() as plain:
                plain.execute("SELECT name FROM pg_prepared_statements WHERE NOT from_sql")
                names.append({row[0] for row in plain.fetchall()})
        assert names[0] and names[1] and not names[0] & names[1]
    finally:
        other.close()


def test_a_statement_of_the_same_name_already_there_turns_preparing_off(storage, caplog):
    caplog.set_level(logging.WARNING, logger="django_durable")
    (run_id,) = enqueue(storage)
    taken = f"_pg3_{prepared._raw_cursor(connection).connection._prepared._prepared_idx}"
    with connection.cursor() as cursor:
        cursor.execute(f'PREPARE "{taken}" AS SELECT 1')
    (claimed,) = claim(storage)
    assert claimed.run.id == run_id
    assert claims_prepared() == []
    (line,) = turned_off(caplog)
    assert f'prepared statement "{taken}" already exists' in line


def test_a_statement_lost_inside_a_transaction_leaves_it_usable(storage, caplog):
    caplog.set_level(logging.WARNING, logger="django_durable")
    sql = "SELECT count(*) FROM django_durable_run WHERE status = %s"
    assert prepared.execute("default", sql, ["pending"]).fetchone() == (0,)
    assert sql.replace("%s", "$1") in prepared_statements()
    drop_prepared_statements()
    with transaction.atomic():
        (run_id,) = enqueue(storage)
        assert prepared.execute("default", sql, ["pending"]).fetchone() == (1,)
        assert Run.objects.filter(pk=run_id).exists()  # the transaction goes on
    assert Run.objects.filter(pk=run_id).exists()  # and commits
    assert len(turned_off(caplog)) == 1


def test_a_keyed_runs_last_write_survives_a_lost_statement(storage, caplog):
    # A keyed run ends inside a transaction (its write, then freeing its key): the lost
    # statement's error must not abort it and abandon the write.
    caplog.set_level(logging.WARNING, logger="django_durable")
    enqueue(storage)
    first_keyed, second_keyed = enqueue(storage, 2, concurrency_key="k")
    plain, keyed = claim(storage, limit=3)
    storage.complete(plain.lease, "done", Checkpoint())  # in autocommit: prepared
    assert any(sql.startswith("UPDATE") for sql in prepared_statements())
    drop_prepared_statements()
    storage.complete(keyed.lease, "done", Checkpoint())  # the same text, in the transaction
    assert Run.objects.get(pk=first_keyed).status == RunStatus.COMPLETED
    assert [item.run.id for item in claim(storage)] == [second_keyed]  # the key was freed
    assert len(turned_off(caplog)) == 1


@override_settings(DURABLE={"PREPARE_STATEMENTS": False})
def test_the_setting_turns_preparing_off(storage):
    enqueue(storage, 2)
    assert len(claim(storage, limit=2)) == 2
    assert prepared_statements() == []


def test_prepare_threshold_none_in_options_turns_preparing_off(storage):
    options = connection.settings_dict.setdefault("OPTIONS", {})
    options["prepare_threshold"] = None
    try:
        enqueue(storage, 2)
        assert len(claim(storage, limit=2)) == 2
        assert prepared_statements() == []
    finally:
        del options["prepare_threshold"]


def test_the_claim_honours_keys_priorities_and_a_single_queue(storage):
    low = enqueue(storage, priority=-5)[0]
    other_queue = enqueue(storage, queue_name="other", priority=50)[0]
    keyed_first, keyed_second = enqueue(storage, 2, concurrency_key="k", priority=10)
    claimed = claim(storage, limit=10, queues=["default"])
    # One run per key, the higher priority first, the other queue left alone.
    assert [item.run.id for item in claimed] == [keyed_first, low]
    assert Run.objects.get(pk=keyed_second).status == RunStatus.PENDING
    assert Run.objects.get(pk=other_queue).status == RunStatus.PENDING
    assert [item.run.id for item in claim(storage, limit=10, queues=["default", "other"])] == [
        other_queue
    ]


def test_a_claim_from_every_queue_reads_the_backlog_in_index_order(storage):
    Run.objects.bulk_create(
        Run(job_name=JOB, queue_name=f"q{i % 7}", priority=i % 3) for i in range(5000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_durable_run")
    queue_filter, params = _queue_filter(None)
    params |= {
        "jobs": [JOB],
        "limit": 8,
        "now": timezone.now(),
        "owner": "w1",
        "token": None,
        "stale_after": 30.0,
        "timeout_jobs": [],
        "timeouts": [],
    }
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute("EXPLAIN " + _claim_sql("default", queue_filter), params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    candidates = plan.split("CTE candidates")[1].split("CTE taken")[0]
    assert "Index Scan using durable_run_claim_any" in candidates, plan
    assert "Sort" not in candidates, plan
