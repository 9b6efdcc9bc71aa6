"""PostgreSQL through PgBouncer in transaction pooling mode, with DURABLE at its defaults.

PgBouncer 1.18 (Debian's) keeps neither prepared statements nor LISTEN across
transactions: workers stop preparing and poll, say so, and lose no run.
"""

import threading
import time

import pytest
from django.db import transaction
from django.db.models import Count

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.notify import Listener
from tests.pgbouncer import ALIAS, pgbouncer, requires_pgbouncer  # noqa: F401
from tests.testapp import jobs
from tests.testapp.models import Execution
from tests.workers import WorkerProcess, wait_until

pytestmark = [
    requires_pgbouncer,
    pytest.mark.usefixtures("pgbouncer"),
    pytest.mark.django_db(transaction=True, databases=["default", ALIAS]),
]

RUNS = 1000
KEYED = 100  # of them: a keyed run's last write is inside a transaction
POLL_INTERVAL = 0.1  # tests/settings.py's, which the workers use
SLACK = 1.5  # scheduling on a loaded machine


def test_a_listener_through_pgbouncer_finds_nothing_arrives_and_says_it_polls():
    reasons, listening, notified = [], threading.Event(), threading.Event()
    stopping = threading.Event()
    listener = Listener(
        ALIAS,
        None,
        notified.set,
        stopping,
        on_listening=listening.set,
        on_polling=reasons.append,
        probe_timeout=1.0,
    )
    listener.start()
    listener.join(30)
    stopping.set()
    assert not listener.is_alive()  # it gave up listening
    (reason,) = reasons
    assert "did not arrive within 1.0s" in reason and "LISTEN_DATABASE" in reason
    assert not listening.is_set() and not notified.is_set()


def unfinished():
    return Run.objects.exclude(status=RunStatus.COMPLETED).count()


def test_two_workers_through_pgbouncer_at_defaults_complete_every_run(tmp_path):
    with transaction.atomic():
        for i in range(RUNS):
            key = f"account-{i}" if i < KEYED else None
            jobs.two_steps.using(concurrency_key=key).enqueue()
    workers = [
        WorkerProcess(
            tmp_path / f"w{i}.log", "--concurrency", "8", DURABLE_TEST_THROUGH_PGBOUNCER="1"
        )
        for i in range(2)
    ]
    try:
        wait_until(lambda: unfinished() == 0, timeout=300, what="the drain")
        wait_until(
            lambda: all("event=polling" in worker.output for worker in workers),
            what="both workers to fall back to polling",
        )
        time.sleep(1.0)  # both idle now, each polling
        enqueued = time.monotonic()
        late = jobs.two_steps.enqueue()
        wait_until(
            lambda: Run.objects.get(pk=late.id).status != RunStatus.PENDING,
            timeout=10,
            what="the late run to be claimed",
        )
        picked_up = time.monotonic() - enqueued
        wait_until(lambda: unfinished() == 0, what="the late run to complete")
    finally:
        codes = [worker.terminate() for worker in workers]
    assert codes == [0, 0]
    assert Run.objects.count() == RUNS + 1
    assert Run.objects.filter(status=RunStatus.RUNNING).count() == 0
    assert Run.objects.filter(recoveries__gt=0).count() == 0
    # Every step ran exactly once, and both processes shared the work.
    assert Execution.objects.count() == 2 * (RUNS + 1)
    assert not Execution.objects.values("run_id", "step").annotate(n=Count("id")).filter(n__gt=1)
    assert Execution.objects.values("pid").distinct().count() == 2
    assert picked_up < POLL_INTERVAL + SLACK
    for worker in workers:
        log = worker.output
        assert log.count("event=prepared_statements_off alias=default") == 1, log[-2000:]
        assert "event=polling" in log and "event=listening" not in log
        assert "storage_error" not in log and "Traceback" not in log, log[-2000:]
