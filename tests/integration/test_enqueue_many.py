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
