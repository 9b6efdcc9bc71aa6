import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from django_durable import (
    RunNotFound,
    RunStatus,
    get_run,
    signals,
)
from django_durable.models import Run
from tests.testapp.jobs import echo


@pytest.mark.django_db
def test_enqueue_returns_a_handle_and_stores_the_run():
    handle = echo.using(priority=5, concurrency_key="c").enqueue(1, (2, 3), flag=True)
    assert handle.created and handle.status == RunStatus.PENDING
    assert handle.args == [1, [2, 3]] and handle.kwargs == {"flag": True}
    run = Run.objects.get(pk=handle.id)
    assert (run.job_name, run.priority, run.concurrency_key) == ("tests.echo", 5, "c")
    assert get_run(str(handle.id)).id == handle.id


@pytest.mark.django_db
def test_future_run_after_makes_a_waiting_run():
    handle = echo.using(run_after=timedelta(hours=1)).enqueue()
    assert handle.status == RunStatus.WAITING
    run = Run.objects.get(pk=handle.id)
    assert run.wake_at > timezone.now() + timedelta(minutes=59)


@pytest.mark.django_db
def test_get_run_of_an_unknown_id():
    with pytest.raises(RunNotFound):
        get_run("018f0000-0000-7000-8000-000000000000")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "fragment"),
    [
        ((Decimal("9.99"),), {}, TypeError, "args[0] of tests.echo is a decimal.Decimal"),
        ((), {"when": timezone.now()}, TypeError, "kwargs['when'] of tests.echo is a datetime"),
        ((), {"data": {1: "a"}}, TypeError, "kwargs['data'] of tests.echo has the key 1"),
        ((float("nan"),), {}, ValueError, "args[0] of tests.echo is nan"),
    ],
)
def test_non_json_arguments_are_refused_and_nothing_is_stored(args, kwargs, error, fragment):
    with pytest.raises(error) as raised:
        echo.enqueue(*args, **kwargs)
    assert fragment in str(raised.value)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_oversized_arguments_are_refused(settings):
    settings.DURABLE = {"MAX_PAYLOAD_BYTES": 1000}
    with pytest.raises(ValueError, match=r"kwargs\['blob'\] of tests\.echo is 1002 bytes"):
        echo.enqueue(blob="x" * 1000)
    assert not Run.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_enqueue_is_part_of_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        handle = echo.enqueue()
        raise RuntimeError("the view failed")
    assert not Run.objects.filter(pk=handle.id).exists()


@pytest.mark.django_db(transaction=True)
def test_run_enqueued_is_sent_on_commit_only():
    received = []

    def receiver(sender, run, **kwargs):
        received.append(run.id)

    signals.run_enqueued.connect(receiver)
    try:
        with transaction.atomic():
            handle = echo.enqueue()
            assert received == []
        assert received == [handle.id]
        with pytest.raises(RuntimeError), transaction.atomic():
            echo.enqueue()
            raise RuntimeError
        assert received == [handle.id]
    finally:
        signals.run_enqueued.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_idempotency_key_from_8_threads_yields_one_run():
    barrier = threading.Barrier(8)
    handles, errors = [], []

    def enqueue():
        try:
            barrier.wait()
            with transaction.atomic():
                handles.append(echo.using(idempotency_key="order-42").enqueue(42))
        except Exception as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len({h.id for h in handles}) == 1 and len(handles) == 8
    assert sum(h.created for h in handles) == 1
    assert Run.objects.filter(idempotency_key="order-42").count() == 1


@pytest.mark.django_db
def test_handle_refresh_updates_in_place():
    handle = echo.enqueue()
    Run.objects.filter(pk=handle.id).update(status=RunStatus.COMPLETED, output={"x": 1})
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == {"x": 1}
    assert handle.is_finished
