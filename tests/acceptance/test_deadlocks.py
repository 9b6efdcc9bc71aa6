"""An operator cancels parents while their children finish on real workers: cancel_run
never raises, and no child's completion is aborted and left to lease expiry.

Cancelling locks the parent, then its children; a finishing child locks its parent
too. Both take the parent's row first, so the two wait for each other in line instead
of deadlocking (the database's own deadlock counter is checked where it has one).
"""

import random

import pytest
from django.db import connection
from django.db.models import Q

from django_durable import RunStatus, cancel_run
from django_durable.models import Run
from django_durable.status import FINISHED_STATUSES
from tests.testapp import jobs
from tests.workers import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor == "sqlite", reason="one writer at a time: no deadlock"),
]

ROUNDS = 25
# Far longer than the test: a completion lost to a deadlock would still be running at the
# end of its round, waiting for its lease to expire.
STALE_AFTER = 120.0


def deadlocks() -> int:
    """How many deadlocks the server has detected so far."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
            )
            return int(cursor.fetchone()[0])
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        return int(cursor.fetchone()[1])


def unfinished(parent_id) -> int:
    family = Run.objects.filter(Q(pk=parent_id) | Q(parent_id=parent_id))
    return family.exclude(status__in=FINISHED_STATUSES).count()


def test_cancelling_parents_while_their_children_finish(tmp_path):
    workers = [
        WorkerProcess(tmp_path / f"worker-{i}.log", "--concurrency", "4", stale_after=STALE_AFTER)
        for i in range(2)
    ]
    chance = random.Random(14)
    before = deadlocks()
    try:
        for _ in range(ROUNDS):
            parent = jobs.fan_out_to.enqueue(list(range(8)), pause=chance.uniform(0.0, 0.05))
            # Cancel once the first children have finished, while the others finish.
            wait_until(
                lambda parent=parent: Run.objects.filter(
                    parent_id=parent.id, status=RunStatus.COMPLETED
                ).exists(),
                what="a child to complete",
            )
            cancel_run(parent.id)  # raises nothing
            wait_until(
                lambda parent=parent: unfinished(parent.id) == 0,
                timeout=15,
                what="every run to end (none left to lease expiry)",
            )
    finally:
        for worker in workers:
            assert worker.terminate() == 0, worker.output
    logs = "".join(worker.output for worker in workers)
    assert "Traceback" not in logs
    assert "retrying" not in logs and "deadlock" not in logs.lower()
    assert not Run.objects.filter(recoveries__gt=0).exists()
    assert deadlocks() == before
