"""Job.enqueue_many: many runs in a few statements, every call checked first."""

import math

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_durable import RunStatus, signals
from django_durable.models import Run
from django_durable.testing import run_until_idle
from tests.testapp import jobs

pytestmark = pytest.mark.django_db(transaction=True)


def inserts(queries):
    return [query for query in queries if query["sql"].startswith("INSERT INTO")]


def test_runs_are_inserted_in_one_statement_and_handles_come_back_in_order():
    calls = [{"n": n} for n in range(200)]
    with CaptureQueriesContext(connection) as queries:
        handles = jobs.echo.enqueue_many(calls)
    # One INSERT per batch the database takes (SQLite builds with a 999-parameter limit
    # take 35 rows at a time).
    per_batch = connection.ops.bulk_batch_size(list(Run._meta.concrete_fields), calls)
    assert len(inserts(queries)) == math.ceil(len(calls) / per_batch) < len(calls) / 10
    if connection.vendor == "postgresql":
        assert len([q for q in queries if "pg_notify" in q["sql"]]) == 1
    assert [Run.objects.get(pk=handle.id).kwargs for handle in handles] == calls
    assert all(handle.created for handle in handles)
    run_until_idle()
    statuses = set(Run.objects.filter(pk__in=[h.id for h in handles]).values_list("status"))
    assert statuses == {(RunStatus.COMPLETED,)}


def test_one_bad_call_stores_nothing_and_names_its_index():
    with pytest.raises(ValueError, match=r"item 2: .*NUL"):
        jobs.echo.enqueue_many([{"a": 1}, {"a": 2}, {"a": "\x00"}])
    with pytest.raises(TypeError, match="item 1 is"):
        jobs.echo.enqueue_many([{"a": 1}, ["not", "kwargs"]])
    with pytest.raises(TypeError, match=r"item 0: .*pause_in_step_2"):
        jobs.three_steps.enqueue_many([{"missing": 1}])
    assert not Run.objects.exists()


def test_an_idempotency_key_names_one_run():
    keyed = jobs.echo.using(idempotency_key="order-9")
    with pytest.raises(ValueError, match="names one run; enqueue_many got 2 calls"):
        keyed.enqueue_many([{}, {}])
    (first,) = keyed.enqueue_many([{}])
    (again,) = keyed.enqueue_many([{"other": 1}])
    assert first.created and not again.created and again.id == first.id


def test_the_runs_and_their_signals_go_with_the_callers_transaction():
    received = []

    def receiver(sender, run, **kwargs):
        received.append(run.id)

    signals.run_enqueued.connect(receiver)
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            jobs.echo.enqueue_many([{}, {}])
            raise RuntimeError
        assert not Run.objects.exists() and received == []
        with transaction.atomic():
            handles = jobs.echo.enqueue_many([{}, {}, {}])
            assert received == []
        assert received == [handle.id for handle in handles]
    finally:
        signals.run_enqueued.disconnect(receiver)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's own insert")
@pytest.mark.parametrize("how", ["enqueue_many", "enqueue"])
def test_postgresqls_own_inserts_store_the_rows_the_portable_path_stores(how):
    """``enqueue_many``'s unnest statement, and the one-row statement of an enqueue in
    autocommit, against Django's ``bulk_create``."""
    from datetime import UTC, datetime, timedelta

    from django_durable.storage import storage_for
    from django_durable.storage.base import NewRun
    from django_durable.storage.orm import ORMStorage

    parent = jobs.echo.enqueue()
    news = [
        NewRun(job_name="tests.echo", queue_name="default", priority=0, args=[], kwargs={}),
        NewRun(
            job_name="tests.echo",
            queue_name="mail",
            priority=-3,
            args=[1, "two", None],
            kwargs={"nested": {"list": [1.5, True]}},
            concurrency_key="k",
            run_after=timedelta(hours=1),
            parent_id=parent.id,
            scheduled_at=datetime(2030, 1, 1, tzinfo=UTC),
            trace_context={"traceparent": "00-abc-def-01"},
        ),
        NewRun(
            job_name="tests.echo",
            queue_name="default",
            priority=5,
            args=[],
            kwargs={"null": None},
            run_after=datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC),
        ),
    ]
    storage = storage_for("default")
    if how == "enqueue_many":
        fast = storage.enqueue_many(news)
    else:
        assert connection.get_autocommit()
        fast = [storage.enqueue(new)[0] for new in news]
    portable = ORMStorage("default").enqueue_many(news)
    # Database times differ by the moment of each insert; everything else is the same.
    moments = {"id", "created_at", "run_after", "wake_at"}

    def columns(run):
        fields = Run._meta.concrete_fields
        return {f.attname: getattr(run, f.attname) for f in fields if f.attname not in moments}

    for ours, theirs in zip(fast, portable, strict=True):
        row, other = Run.objects.get(pk=ours.id), Run.objects.get(pk=theirs.id)
        assert columns(row) == columns(other)
        assert (row.wake_at is None) == (other.wake_at is None)
        assert abs(row.run_after - other.run_after) < timedelta(seconds=30)
        # The records handed back are the rows as stored.
        assert ours == storage_for("default").get_run(ours.id)
    immediate, delayed, at = fast
    assert (immediate.status, delayed.status, at.status) == ("pending", "waiting", "waiting")
    # One statement's runs share its time; one enqueue after another, a few ms pass.
    slack = timedelta(0) if how == "enqueue_many" else timedelta(seconds=5)
    assert (
        timedelta(minutes=59) < delayed.wake_at - immediate.run_after <= timedelta(hours=1) + slack
    )
    assert at.run_after == at.wake_at == datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert immediate.errors == [] and immediate.errors is not delayed.errors
