"""django_durable.testing: run_until_idle inside TestCase transactions, factories, async API."""

import pytest
from asgiref.sync import async_to_sync

from django_durable import RunStatus, aget_run
from django_durable.models import Run
from django_durable.testing import run_until_idle
from django_durable.testing.factories import (
    RunEventFactory,
    RunFactory,
    RunLogFactory,
    StepFactory,
)
from tests.testapp import jobs

pytestmark = pytest.mark.django_db  # a TestCase-style transaction, rolled back after


def test_run_until_idle_works_inside_the_test_transaction():
    first = jobs.echo.enqueue("a")
    mail = jobs.echo.using(queue_name="mail").enqueue("b")
    assert run_until_idle(queues=["default"]) == 1
    assert Run.objects.get(pk=mail.id).status == RunStatus.PENDING
    assert run_until_idle() == 1
    assert run_until_idle() == 0
    first.refresh()
    assert first.status == RunStatus.COMPLETED


def test_run_until_idle_max_runs():
    for _ in range(3):
        jobs.echo.enqueue()
    assert run_until_idle(max_runs=2) == 2
    assert Run.objects.filter(status=RunStatus.PENDING).count() == 1


def test_factories_build_consistent_rows():
    completed = RunFactory(completed=True)
    failed = RunFactory(failed=True)
    step = StepFactory(run=completed)
    log = RunLogFactory(run=completed)
    event = RunEventFactory(run=failed)
    assert completed.status == RunStatus.COMPLETED and completed.output == {"ok": True}
    assert failed.status == RunStatus.FAILED and failed.errors[0]["type"] == "builtins.ValueError"
    assert list(completed.steps.all()) == [step] and list(completed.logs.all()) == [log]
    assert list(failed.events.all()) == [event]


def test_async_enqueue_and_lookup():
    handle = async_to_sync(jobs.echo.aenqueue)(7)
    fetched = async_to_sync(aget_run)(handle.id)
    assert fetched.id == handle.id and fetched.args == [7]
    async_to_sync(fetched.arefresh)()
    assert fetched.status == RunStatus.PENDING
