"""A long atomic step keeps its own lease and its neighbours' (issue 14, item 3).

One worker runs an atomic step three times longer than STALE_AFTER next to plain runs
while a second worker sweeps for stale leases: none of the first worker's runs is taken
over, and no step body runs twice (each execution is counted in a marks file, which a
rollback does not undo).
"""

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from tests.testapp import atomic_jobs
from tests.testapp.models import Account, Execution
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

STALE_AFTER = 2.0


def test_a_long_atomic_step_next_to_plain_runs_loses_no_lease(tmp_path):
    marks = str(tmp_path / "marks")
    atomic = atomic_jobs.long_atomic.enqueue(marks, 3 * STALE_AFTER)
    plain = [atomic_jobs.plain_steps.enqueue(marks, 16, 0.5) for _ in range(3)]
    runs = [atomic.id, *(handle.id for handle in plain)]
    holder = WorkerProcess(tmp_path / "holder.log", "--concurrency", "4", stale_after=STALE_AFTER)
    sweeper = None
    try:
        wait_until(
            lambda: Run.objects.filter(pk__in=runs, status=RunStatus.RUNNING).count() == 4,
            what="the holder to claim every run",
        )
        # Nothing left to claim: the sweeper only sweeps, and takes over what goes stale.
        sweeper = WorkerProcess(tmp_path / "sweeper.log", stale_after=STALE_AFTER)
        wait_until(
            lambda: Run.objects.filter(pk__in=runs, status=RunStatus.COMPLETED).count() == 4,
            timeout=60,
            what="every run to complete",
        )
    finally:
        assert holder.terminate() == 0, holder.output
        if sweeper is not None:
            assert sweeper.terminate() == 0, sweeper.output
    assert "recovered_stale_lease" not in sweeper.output
    assert "lease_not_renewed" not in holder.output
    assert "outcome=lease_lost" not in holder.output
    assert list(Run.objects.filter(pk__in=runs).values_list("recoveries", flat=True)) == [0] * 4
    lines = atomic_jobs.executions(marks)
    counted = {(run, step): 0 for run, step, _ in lines}
    for run, step, _ in lines:
        counted[(run, step)] += 1
    assert len(counted) == 3 + 3 * 16
    assert set(counted.values()) == {1}, [key for key, count in counted.items() if count > 1]
    assert {pid for _, _, pid in lines} == {holder.process.pid}
    assert Account.objects.filter(owner=str(atomic.id)).count() == 1
    assert Execution.objects.filter(run_id=atomic.id).count() == 2
