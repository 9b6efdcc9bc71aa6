"""Completions handed in by slot threads are committed together with the next claims."""

import collections
import logging
import threading
import time
import uuid

import pytest
from django.db import connection, connections

from django_durable import completions
from django_durable.exceptions import StorageError
from django_durable.models import Run
from django_durable.runner import execute_run
from django_durable.status import RunStatus
from django_durable.worker import Worker
from tests.testapp import jobs

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="on SQLite every execution writes its own"
    ),
]


@pytest.fixture
def patient(monkeypatch):
    """Slots wait for the test's main thread as long as it needs."""
    monkeypatch.setattr(completions, "PATIENCE", 30.0)


def start_executions(worker, claimed):
    """Execute ``claimed`` on threads as slots do; their statuses land in the dict."""
    statuses = {}

    def execute(item):
        held, hooks = worker._held.hooks(item)
        try:
            statuses[item.run.id] = execute_run(worker._slot_storage, item, jobs.echo, **hooks)
        finally:
            worker._held.executed(item.run.id, held)
            connections.close_all()

    threads = [threading.Thread(target=execute, args=(item,)) for item in claimed]
    for thread in threads:
        thread.start()
    return threads, statuses


def wait_for_handed_in(worker, count):
    deadline = time.monotonic() + 10
    while len(worker._completions._waiting) < count:
        assert time.monotonic() < deadline, "the executions never handed their completions in"
        time.sleep(0.005)


@pytest.fixture
def commits(monkeypatch):
    """Commits of Django transactions, counted per thread (they still commit)."""
    counted = collections.Counter()
    wrapper = type(connections["default"])
    commit = wrapper.commit

    def counting(self):
        counted[threading.current_thread().name] += 1
        return commit(self)

    monkeypatch.setattr(wrapper, "commit", counting)
    return counted


def test_completions_commit_with_the_claims_that_replace_them(patient, commits):
    handles = [jobs.echo.enqueue(i) for i in range(6)]
    worker = Worker(jobs={jobs.echo.name: jobs.echo}, concurrency=3)
    first = worker._claim()
    threads, statuses = start_executions(worker, first)
    wait_for_handed_in(worker, 3)

    commits.clear()
    second = worker._claim()
    for thread in threads:
        thread.join(10)

    # Three completions and three claims, one commit, by the main thread.
    assert commits == {threading.current_thread().name: 1}
    assert set(statuses.values()) == {RunStatus.COMPLETED}
    done = {item.run.id for item in first}
    assert Run.objects.filter(pk__in=done, status="completed").count() == 3
    assert {item.run.id for item in second} == {h.id for h in handles} - done
    assert Run.objects.filter(pk__in=[i.run.id for i in second], status="running").count() == 3
    assert Run.objects.get(pk=first[0].run.id).output == {"args": [0], "kwargs": {}}


def test_a_completion_whose_fence_fails_fails_alone(patient):
    for i in range(3):
        jobs.echo.enqueue(i)
    worker = Worker(jobs={jobs.echo.name: jobs.echo}, concurrency=3)
    claimed = worker._claim()
    threads, statuses = start_executions(worker, claimed)
    wait_for_handed_in(worker, 3)
    # Another worker took one run over while its completion waited to be written.
    lost = claimed[1].run.id
    Run.objects.filter(pk=lost).update(lease_owner="other", lease_token=uuid.uuid4())

    worker._claim()
    for thread in threads:
        thread.join(10)

    assert statuses[lost] is None  # abandoned: the run is the other worker's
    kept = Run.objects.get(pk=lost)
    assert (kept.status, kept.lease_owner, kept.output) == ("running", "other", None)
    others = [item.run.id for item in claimed if item.run.id != lost]
    assert [statuses[run_id] for run_id in others] == [RunStatus.COMPLETED] * 2
    assert Run.objects.filter(pk__in=others, status="completed").count() == 2


def test_when_the_transaction_fails_each_execution_writes_its_own(
    patient, monkeypatch, commits, caplog
):
    handles = [jobs.echo.enqueue(i) for i in range(4)]
    worker = Worker(jobs={jobs.echo.name: jobs.echo}, concurrency=2)
    claimed = worker._claim()
    threads, statuses = start_executions(worker, claimed)
    wait_for_handed_in(worker, 2)
    main = threading.current_thread()
    complete = worker.storage.complete
    written = []

    def second_fails(lease, output, checkpoint):
        complete(lease, output, checkpoint)
        written.append(lease.run_id)
        if threading.current_thread() is main and len(written) == 2:
            raise StorageError("the database failed after the write")

    monkeypatch.setattr(worker.storage, "complete", second_fails)
    commits.clear()
    with caplog.at_level(logging.WARNING, logger="django_durable"):
        assert worker._claim() == []  # nothing claimed either
    assert "event=completions_written_singly error=the database failed" in caplog.text
    for thread in threads:
        thread.join(10)

    # Both completions were rolled back with the claim, then each execution wrote its
    # own: four writes, no commit by the main thread, the two other runs still pending.
    assert len(written) == 4
    assert commits[main.name] == 0
    assert [statuses[item.run.id] for item in claimed] == [RunStatus.COMPLETED] * 2
    assert Run.objects.filter(pk__in=[i.run.id for i in claimed], status="completed").count() == 2
    assert Run.objects.filter(pk__in=[h.id for h in handles], status="pending").count() == 2


def test_a_completion_the_main_thread_does_not_take_is_written_by_its_execution():
    jobs.echo.enqueue(1)
    worker = Worker(jobs={jobs.echo.name: jobs.echo})
    claimed = worker._claim()
    began = time.monotonic()
    threads, statuses = start_executions(worker, claimed)
    threads[0].join(10)  # the main thread is busy elsewhere: nobody takes it

    assert list(statuses.values()) == [RunStatus.COMPLETED]
    assert time.monotonic() - began >= completions.PATIENCE
    assert worker._completions._waiting == []
    assert Run.objects.get(pk=claimed[0].run.id).status == "completed"


def test_after_close_executions_write_their_own_at_once(patient):
    jobs.echo.enqueue(1)
    worker = Worker(jobs={jobs.echo.name: jobs.echo})
    claimed = worker._claim()
    worker._completions.close()  # as a stopping worker does once its grace is over
    threads, statuses = start_executions(worker, claimed)
    threads[0].join(10)

    assert not threads[0].is_alive()  # it did not wait out its 30 s of patience
    assert list(statuses.values()) == [RunStatus.COMPLETED]
