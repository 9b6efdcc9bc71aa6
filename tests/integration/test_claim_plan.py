"""Waiting and future-dated runs cost only rows: the claim query walks the runnable index."""

import pytest
from django.db import connection
from django.utils import timezone

from django_durable.models import Run
from django_durable.status import RunStatus
from django_durable.storage.claim import _candidates

# transaction=True: ANALYZE TABLE commits implicitly on MySQL/MariaDB.
pytestmark = pytest.mark.django_db(transaction=True)


def test_10000_sleeping_runs_are_not_scanned_by_the_claim():
    wake = timezone.now() + timezone.timedelta(days=1)
    Run.objects.bulk_create(
        Run(job_name="tests.echo", status=RunStatus.WAITING, wake_at=wake) for _ in range(10_000)
    )
    Run.objects.bulk_create(Run(job_name="tests.echo") for _ in range(5))
    with connection.cursor() as cursor:
        cursor.execute(
            {"postgresql": "ANALYZE", "mysql": "ANALYZE TABLE django_durable_run"}.get(
                connection.vendor, "ANALYZE"
            )
        )
        if connection.vendor == "mysql":
            cursor.fetchall()
    claim = _candidates("default", ["tests.echo"], ["default"]).order_by(
        "-priority", "run_after", "id"
    )[:8]
    plan = claim.explain()
    # An index whose condition is status = 'pending' (the planner picks which), never a
    # walk over the run table.
    assert "durable_run_claim" in plan or "durable_run_status_finished" in plan, plan
    assert "Seq Scan on django_durable_run " not in plan, plan
    assert "SCAN django_durable_run" not in plan, plan
    assert len(list(claim)) == 5
