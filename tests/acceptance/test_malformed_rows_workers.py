"""Malformed rows cost only themselves with two real workers
(tests/integration/test_malformed_rows.py has each row on its own, in-process)."""

import time

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from tests.integration.test_malformed_rows import (
    corrupt,
    expired_without_recoveries,
    overdue_waiting,
    reports,
    waiting_parent,
)
from tests.testapp import jobs
from tests.testapp.jobs import executions
from tests.workers import WorkerProcess, wait_until


@pytest.mark.django_db(transaction=True)
def test_malformed_rows_cost_only_themselves_with_two_workers(tmp_path):
    stale = jobs.echo.enqueue().id
    expired_without_recoveries(stale)
    overdue = jobs.echo.enqueue().id
    overdue_waiting(overdue)
    parent = waiting_parent("garbage")
    object_args = jobs.three_steps.enqueue().id
    corrupt(object_args, args={"order": 1})
    ordinary = [jobs.two_steps.enqueue().id for _ in range(5)]
    bad = [stale, overdue, parent, object_args]

    workers = [WorkerProcess(tmp_path / f"worker-{i}.log", "--concurrency", "2") for i in (1, 2)]
    try:

        def settled():
            runs = dict(Run.objects.filter(pk__in=[*ordinary, *bad]).values_list("pk", "status"))
            return all(runs[pk] == RunStatus.COMPLETED for pk in [*ordinary, parent]) and all(
                runs[pk] == RunStatus.FAILED for pk in (stale, overdue, object_args)
            )

        wait_until(settled, timeout=60, what="the ordinary runs to complete, the bad ones to end")
        time.sleep(1)  # ten more sweeps each: none reports a row again, no worker exits
        for worker in workers:
            assert worker.process.poll() is None, worker.output
    finally:
        codes = [worker.terminate() for worker in workers]
    output = "\n".join(worker.output for worker in workers)
    assert codes == [0, 0], output
    for run_id in bad:
        assert len(reports(output.splitlines(), run_id)) == 1, (run_id, output)
    assert "event=loop_error" not in output and "Traceback" not in output, output
    for run_id in ordinary:
        assert executions(run_id, "first") == executions(run_id, "second") == 1
    assert Run.objects.get(pk=parent).output == 9
