"""The run table's indexes on parent, forked_from and the idempotency key leave out the
rows where those are NULL where the database has partial indexes (migration 0009), and
MySQL/MariaDB keep full ones: the idempotency key stays unique everywhere."""

import pytest
from django.db import IntegrityError, connection, transaction

from django_durable.models import Run
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

LEFT_OUT = {
    "durable_run_parent": "parent_id",
    "durable_run_forked_from": "forked_from",
    "durable_run_idempotency_key": "idempotency_key",
}


def definition(name):
    """The index's stored definition (PostgreSQL, SQLite); None elsewhere."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [name])
        else:
            return None
        return cursor.fetchone()[0]


def test_the_indexes_exist_and_the_key_is_unique():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Run._meta.db_table)
    assert constraints["durable_run_parent"]["columns"] == ["parent_id"]
    assert constraints["durable_run_forked_from"]["columns"] == ["forked_from"]
    key = constraints["durable_run_idempotency_key"]
    assert key["columns"] == ["job_name", "idempotency_key"] and key["unique"]
    # The old full index of each field is gone, not kept beside the new one.
    for column in ("parent_id", "forked_from"):
        on_column = [
            name
            for name, info in constraints.items()
            if info["index"] and info["columns"] == [column]
        ]
        assert len(on_column) == 1, on_column


@pytest.mark.parametrize("name", sorted(LEFT_OUT))
def test_null_rows_are_left_out_where_indexes_can_be_partial(name):
    text = definition(name)
    if not connection.features.supports_partial_indexes:
        pytest.skip(f"{connection.vendor} has no partial indexes: the index is full")
    assert text is not None
    assert "IS NOT NULL" in text and LEFT_OUT[name] in text, text


def test_two_runs_of_a_job_cannot_share_a_key_but_runs_without_one_can():
    jobs.echo.enqueue()
    jobs.echo.enqueue()  # no key: both stored
    keyed = jobs.echo.using(idempotency_key="order-1")
    first = keyed.enqueue()
    again = keyed.enqueue()
    assert again.id == first.id and not again.created
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.create(job_name="tests.echo", idempotency_key="order-1")
    assert Run.objects.filter(idempotency_key="order-1").count() == 1
    assert Run.objects.filter(job_name="tests.echo").count() == 3
