# shop/test_jobs.py
from datetime import timedelta

import pytest

from django_durable import RunStatus, get_run, send_event
from django_durable.testing import InMemoryStorage, run_until_idle, use_storage

from .jobs import refund


@pytest.fixture
def storage():
    # No @pytest.mark.django_db: these tests never touch the database.
    with use_storage(InMemoryStorage()) as storage:
        yield storage


def test_approved_refund_is_paid(storage):
    run = refund.enqueue(order_id=7, amount_cents=1200)
    run_until_idle()
    send_event(run.id, "decision", {"approved": True})
    run_until_idle()
    assert get_run(run.id).output == "re_7_1200"


def test_refund_nobody_decides_expires_after_two_days(storage):
    run = refund.enqueue(order_id=8, amount_cents=500)
    run_until_idle()
    assert get_run(run.id).status == RunStatus.WAITING

    storage.advance(timedelta(days=2, seconds=1))  # no sleeping: move its clock
    run_until_idle()
    assert get_run(run.id).output == "expired"
