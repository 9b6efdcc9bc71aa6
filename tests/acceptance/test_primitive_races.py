"""Races and crashes around waiting runs: nothing is lost, nothing delivered twice."""

import functools
import threading

import pytest
from django.db import connection

from django_durable import RunStatus, send_event
from django_durable.models import Run, RunEvent
from django_durable.testing import run_until_idle
from tests.testapp import jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def status(run_id):
    return Run.objects.get(pk=run_id).status


def in_parallel(*functions):
    barrier = threading.Barrier(len(functions))
    errors = []

    def call(function):
        try:
            barrier.wait()
            function()
        except Exception as error:  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(f,)) for f in functions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_an_event_sent_while_the_run_starts_waiting_is_delivered_exactly_once():
    for attempt in range(8):
        handle = jobs.approval.enqueue()
        in_parallel(run_until_idle, functools.partial(send_event, handle.id, "approval", attempt))
        run_until_idle()  # if the run parked first, the event woke it
        handle.refresh()
        assert handle.status == RunStatus.COMPLETED, f"round {attempt}: {handle.status}"
        assert handle.output == attempt
        assert RunEvent.objects.filter(run_id=handle.id, consumed_at__isnull=False).count() == 1


def test_a_child_finishing_while_its_parent_checks_on_it_is_not_missed():
    for attempt in range(6):
        parent = jobs.fan_out_to.enqueue([attempt], queue="kids")
        run_until_idle(queues=["default"])  # the parent starts its child and parks
        assert status(parent.id) == RunStatus.WAITING
        # Let the parent run again (as a spurious wake-up would) while the child finishes.
        Run.objects.filter(pk=parent.id).update(status=RunStatus.PENDING)
        in_parallel(
            lambda: run_until_idle(queues=["default"]), lambda: run_until_idle(queues=["kids"])
        )
        run_until_idle(queues=["default"])
        assert status(parent.id) == RunStatus.COMPLETED, f"round {attempt}"
        assert Run.objects.get(pk=parent.id).output == attempt * attempt


def test_killed_while_sleeping_waiting_for_an_event_and_for_children(tmp_path):
    sleeper = jobs.sleeper.enqueue(1.5)
    approval = jobs.approval.enqueue()
    parent = jobs.fan_out_to.enqueue([1, 2, 3], pause=0.5)
    first = WorkerProcess(tmp_path / "first.log", "--concurrency", "2")
    try:
        wait_until(
            lambda: (
                status(sleeper.id) == status(approval.id) == RunStatus.WAITING
                and status(parent.id) == RunStatus.WAITING
            ),
            what="all three runs to wait",
        )
    finally:
        first.kill()
    send_event(approval.id, "approval", "granted")
    second = WorkerProcess(tmp_path / "second.log", "--concurrency", "2")
    try:
        wait_until(
            lambda: {status(r.id) for r in (sleeper, approval, parent)} == {"completed"},
            timeout=40,
            what="the runs to complete after the kill",
        )
    finally:
        assert second.terminate() == 0
    assert Run.objects.get(pk=approval.id).output == "granted"
    assert Run.objects.get(pk=parent.id).output == 14
    for run in (sleeper, approval):
        assert executions(run.id, "before") == 1
    assert executions(sleeper.id, "after") == 1
    assert executions(parent.id, "started") == 1
    assert Run.objects.filter(parent_id=parent.id).count() == 3
