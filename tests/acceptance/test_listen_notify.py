"""PostgreSQL wakes idle workers through LISTEN/NOTIFY; other setups poll and say so."""

import threading
import time

import pytest
from django.db import connection

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.notify import Listener
from tests.testapp import jobs
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_idle_worker_picks_up_a_new_run_without_waiting_for_its_poll(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    worker = WorkerProcess(tmp_path / "w.log", "--poll-interval", "60")
    try:
        wait_until(lambda: "event=listening" in worker.output, what="the worker to listen")
        time.sleep(0.5)  # let its first (empty) claim pass; it now sleeps up to 60 s
        enqueued = time.monotonic()
        handle = jobs.echo.enqueue("ping")
        wait_until(
            lambda: Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED,
            timeout=10,
            what="the run to complete",
        )
        assert time.monotonic() - enqueued < 5
    finally:
        assert worker.terminate() == 0


def test_listening_can_be_turned_off_and_the_worker_polls(tmp_path):
    worker = WorkerProcess(tmp_path / "w.log", "--poll-interval", "0.2", DURABLE_TEST_POLL_ONLY="1")
    try:
        wait_until(lambda: "event=polling" in worker.output, what="the worker to start")
        handle = jobs.echo.enqueue("ping")
        wait_until(lambda: Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED)
    finally:
        assert worker.terminate() == 0
    assert "event=listening" not in worker.output


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_a_transaction_announces_its_runs_once_on_commit_and_not_its_rolled_back_ones():
    from django.db import transaction
    from django.test.utils import CaptureQueriesContext

    def notifies(queries):
        return [query["sql"] for query in queries if "pg_notify" in query["sql"]]

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        for _ in range(3):
            jobs.echo.using(queue_name="first").enqueue()
        try:
            with transaction.atomic():
                jobs.echo.using(queue_name="rolled-back").enqueue()
                raise RuntimeError
        except RuntimeError:
            pass
        jobs.echo.using(queue_name="second", idempotency_key="k").enqueue()
        assert notifies(queries) == []  # nothing before the commit
    (sent,) = notifies(queries)
    assert "first" in sent and "second" in sent
    assert "rolled-back" not in sent


def start_listener(alias, **callbacks):
    events = {"notified": threading.Event(), "listening": threading.Event()}
    reasons = []
    stopping = threading.Event()
    listener = Listener(
        alias,
        None,  # every queue: any payload on the queue channel wakes it
        events["notified"].set,
        stopping,
        on_listening=events["listening"].set,
        on_polling=reasons.append,
        **callbacks,
    )
    listener.start()
    return listener, stopping, events, reasons


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_a_listener_checks_its_notifications_arrive_and_its_probe_wakes_no_worker():
    first, first_stop, first_events, first_reasons = start_listener("default")
    second = second_stop = None
    try:
        assert first_events["listening"].wait(10)
        # Another worker's start-up probe is on a channel of its own: nobody is woken.
        second, second_stop, second_events, second_reasons = start_listener("default")
        assert second_events["listening"].wait(10)
        time.sleep(0.3)
        assert not first_events["notified"].is_set()
        assert not second_events["notified"].is_set()
        assert first_reasons == second_reasons == []
        jobs.echo.enqueue("ping")  # a real announcement wakes both
        assert first_events["notified"].wait(5) and second_events["notified"].wait(5)
    finally:
        for stop, thread in ((first_stop, first), (second_stop, second)):
            if thread is not None:
                stop.set()
                thread.join(10)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's")
def test_cancelling_a_run_that_holds_its_keys_slot_announces_the_key_free():
    from django.test.utils import CaptureQueriesContext

    from django_durable import cancel_run
    from django_durable.models import ConcurrencySlot

    # Waiting for a retry, it keeps its key's slot; the key's next run waits for it.
    held = jobs.echo.using(concurrency_key="acct-1", queue_name="keyed").enqueue()
    Run.objects.filter(pk=held.id).update(status=RunStatus.WAITING)
    ConcurrencySlot.objects.create(key="acct-1", run_id=held.id)
    with CaptureQueriesContext(connection) as queries:
        cancel_run(held.id)
    assert not ConcurrencySlot.objects.filter(run_id=held.id).exists()
    sent = [query["sql"] for query in queries if "pg_notify" in query["sql"]]
    assert len(sent) == 1 and "keyed" in sent[0]
