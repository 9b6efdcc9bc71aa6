# shop/test_jobs.py
from datetime import timedelta

import pytest

from django_durable import RunStatus
from django_durable.testing import run_until_idle, time_travel

from . import mailer
from .jobs import follow_up


@pytest.mark.django_db
def test_review_is_asked_for_three_days_after_the_thanks():
    with time_travel() as clock:
        run = follow_up.enqueue(order_id=41)
        run_until_idle()  # thanks sent, then the run sleeps
        clock.advance(timedelta(days=2))
        run_until_idle()  # two days in: still asleep
        assert "review 41" not in mailer.sent

        clock.advance(timedelta(days=1))
        run_until_idle()  # three days in: it wakes and asks for the review

    run.refresh()
    assert run.status == RunStatus.COMPLETED
    assert "review 41" in mailer.sent
