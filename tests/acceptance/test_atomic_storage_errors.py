"""Terminated connections under atomic steps never fail a run (issue 14, item 6).

A thread terminates every worker connection (pg_terminate_backend, as a failover or a
pooler restart would) every second while two workers drain 300 runs of two atomic steps
each. A connection error before COMMIT re-runs the step on a new connection; one at
COMMIT leaves the run to recovery, and the fence keeps its writes from landing twice.
"""

import threading

import psycopg
import pytest
from django.db import connection, transaction

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.notify import announce
from django_durable.storage import get_storage
from tests.testapp import atomic_jobs
from tests.testapp.models import Account
from tests.workers import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_terminate_backend"),
]

RUNS = 300
APPLICATION_NAME = "durable-test-terminated"


def terminate_every_second(stop, kills):
    """Terminate the workers' connections (by application_name) until ``stop`` is set."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as killer:
        while not stop.wait(1.0):
            rows = killer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                [APPLICATION_NAME],
            ).fetchall()
            kills.append(sum(1 for (killed,) in rows if killed))


def test_terminated_connections_during_a_drain_fail_no_run(tmp_path):
    with transaction.atomic():
        handles = [atomic_jobs.writes.enqueue(i) for i in range(RUNS)]
    stop, kills = threading.Event(), []
    killer = threading.Thread(target=terminate_every_second, args=(stop, kills))
    env = {"DURABLE_TEST_APPLICATION_NAME": APPLICATION_NAME}
    workers = [
        WorkerProcess(tmp_path / f"w{i}.log", "--concurrency", "4", stale_after=2.0, **env)
        for i in range(2)
    ]
    killer.start()
    try:
        wait_until(
            lambda: (
                Run.objects.filter(status=RunStatus.COMPLETED).count() == RUNS
                or Run.objects.filter(status=RunStatus.FAILED).exists()
            ),
            timeout=50,
            what="the drain",
        )
    finally:
        stop.set()
        killer.join()
        codes = [worker.terminate() for worker in workers]
    logs = "".join(worker.output for worker in workers)
    assert codes == [0, 0], logs[-3000:]
    assert sum(kills) >= 2 * len(kills), f"too few connections terminated: {kills}"
    assert not Run.objects.filter(status=RunStatus.FAILED).exists(), logs[-3000:]
    assert Run.objects.filter(status=RunStatus.COMPLETED).count() == RUNS
    owners = list(Account.objects.values_list("owner", flat=True))
    assert len(owners) == 2 * RUNS
    assert set(owners) == {f"{h.id}:{step}" for h in handles for step in ("one", "two")}
    # The retry path ran: steps whose connection was terminated before COMMIT.
    assert "event=atomic_step_retry" in logs


def terminate_own_connection():
    """Terminate this thread's connection from another one, as the server would."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)


def test_run_and_journal_reads_reconnect_once():
    handle = atomic_jobs.writes.enqueue(1)
    storage = get_storage()
    terminate_own_connection()
    assert storage.get_run(handle.id).id == handle.id
    terminate_own_connection()
    assert storage.load_journal(handle.id) == []


def test_a_notify_on_a_terminated_connection_is_logged_not_raised(caplog):
    terminate_own_connection()
    try:
        announce(connection.alias, ["default"])  # outside a transaction: sent at once
    finally:
        connection.close()  # as the worker does with a connection that broke
    assert "event=notify_failed" in caplog.text
