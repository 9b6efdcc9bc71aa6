"""The rows that belong to a run have no foreign key constraint in the database: their
writers refuse a run that is gone, and Django's deletes still take them with the run."""

import pytest
from django.db import connection

from django_durable import RunNotFound, send_event
from django_durable.context import RunContext
from django_durable.exceptions import LeaseLost
from django_durable.journal import Journal
from django_durable.models import (
    ConcurrencySlot,
    Run,
    RunEvent,
    RunLog,
    ScheduleTick,
    Step,
)
from django_durable.storage import get_storage
from django_durable.testing import run_until_idle
from tests.testapp import jobs

pytestmark = pytest.mark.django_db

BELONGING = (Step, RunLog, RunEvent, ConcurrencySlot, ScheduleTick)


def foreign_keys(model):
    """The columns of ``model``'s table that have a foreign key constraint, and to what."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        column: info["foreign_key"][0]
        for info in constraints.values()
        if info["foreign_key"]
        for column in info["columns"]
    }


def test_only_the_run_tree_and_the_schedule_have_constraints():
    run_table = Run._meta.db_table
    for model in BELONGING:
        assert foreign_keys(model).get("run_id") is None, model.__name__
    assert foreign_keys(Run) == {"parent_id": run_table}
    assert foreign_keys(ScheduleTick) == {"schedule_id": "django_durable_schedule"}


def test_a_lease_holder_writes_nothing_for_a_run_that_is_gone():
    handle = jobs.echo.enqueue()
    storage = get_storage()
    (claimed,) = storage.claim(owner="w", job_names=["tests.echo"], queues=None, limit=1)
    journal = Journal(storage, claimed, [])
    ctx = RunContext(journal)
    ctx.log.info("before")
    ctx.step("one", lambda: 1)
    storage.delete_runs([handle.id], nested=False)  # as a prune does, rows and all
    assert not RunLog.objects.filter(run_id=handle.id).exists()
    with pytest.raises(LeaseLost):
        ctx.step("two", lambda: 2)  # flushes step one's checkpoint and its log line
    with pytest.raises(LeaseLost):
        storage.complete(claimed.lease, 2, journal.take_pending())
    for model in (Step, RunLog):
        assert not model.objects.filter(run_id=handle.id).exists()


def test_an_event_for_a_run_that_is_gone_is_refused_and_not_stored():
    handle = jobs.approval.enqueue()
    run_until_idle()
    get_storage().delete_runs([handle.id], nested=False)
    with pytest.raises(RunNotFound):
        send_event(handle.id, "approved", True)
    assert not RunEvent.objects.filter(run_id=handle.id).exists()


def test_deleting_runs_with_the_orm_still_takes_their_rows():
    handle = jobs.fan_out.enqueue([2])
    run_until_idle()
    ids = [handle.id, *Run.objects.filter(parent_id=handle.id).values_list("pk", flat=True)]
    assert Step.objects.filter(run_id__in=ids).exists()
    Run.objects.filter(pk__in=ids).delete()
    for model in BELONGING:
        assert not model.objects.filter(run_id__in=ids).exists(), model.__name__
