"""Several real worker processes against one PostgreSQL or MariaDB database."""

import os
import subprocess
import time
from itertools import pairwise

import pytest
from django.db import connection, transaction
from django.db.models import Count, Max, Min

from django_durable import RunStatus
from django_durable.models import Run
from tests.testapp import jobs
from tests.testapp.models import Execution
from tests.workers import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="several writer processes need PostgreSQL/MariaDB"
    ),
]

RUNS = 2000
PROCESSES = 4
THREADS = "4"


def enqueue_drain_runs(count=RUNS):
    with transaction.atomic():
        return [jobs.drain.enqueue().id for _ in range(count)]


def unfinished():
    return Run.objects.exclude(status=RunStatus.COMPLETED).count()


def start_workers(tmp_path, count=PROCESSES, prefix="w"):
    return [
        WorkerProcess(tmp_path / f"{prefix}{i}.log", "--concurrency", THREADS) for i in range(count)
    ]


def stop_all(workers):
    return [worker.terminate() for worker in workers]


def duplicated_steps():
    return list(
        Execution.objects.values("run_id", "step")
        .annotate(times=Count("id"), first=Min("at"))
        .filter(times__gt=1)
    )


def test_four_processes_drain_every_run_each_step_exactly_once(tmp_path):
    enqueue_drain_runs()
    workers = start_workers(tmp_path)
    try:
        wait_until(lambda: unfinished() == 0, timeout=240, what="the drain")
    finally:
        codes = stop_all(workers)
    assert codes == [0] * PROCESSES
    assert Execution.objects.count() == 3 * RUNS
    assert duplicated_steps() == []
    # Every run was executed by one process only: never held by two workers.
    per_run = Execution.objects.values("run_id").annotate(pids=Count("pid", distinct=True))
    assert {row["pids"] for row in per_run} == {1}
    assert Run.objects.filter(recoveries__gt=0).count() == 0
    # The work really was shared.
    assert Execution.objects.values("pid").distinct().count() == PROCESSES


def test_drain_survives_a_worker_killed_every_few_seconds(tmp_path):
    enqueue_drain_runs()
    workers = start_workers(tmp_path)
    killed_pids = []
    try:
        deadline = time.monotonic() + 300
        next_kill = time.monotonic() + 1.5
        while unfinished() and time.monotonic() < deadline:
            if time.monotonic() >= next_kill:
                victim = workers.pop(0)
                killed_pids.append(victim.process.pid)
                victim.kill()
                workers.append(
                    WorkerProcess(tmp_path / f"r{len(killed_pids)}.log", "--concurrency", THREADS)
                )
                next_kill = time.monotonic() + 2.5
            time.sleep(0.1)
        assert unfinished() == 0
    finally:
        stop_all(workers)
    assert len(killed_pids) >= 2, "the drain ended before the test could kill anything"
    assert Execution.objects.values("run_id", "step").distinct().count() == 3 * RUNS
    duplicates = duplicated_steps()
    assert all(row["times"] == 2 for row in duplicates)
    # A body that ran twice first ran in a worker that was then killed mid-step.
    first_pids = {
        Execution.objects.get(run_id=row["run_id"], step=row["step"], at=row["first"]).pid
        for row in duplicates
    }
    assert first_pids <= set(killed_pids)
    assert len(duplicates) <= len(killed_pids) * int(THREADS)


def test_runs_sharing_a_concurrency_key_never_overlap(tmp_path):
    workers = start_workers(tmp_path)
    try:
        # Every worker up before the runs exist: on a loaded machine the first one to
        # boot could otherwise run all of them alone, and prove nothing about the key.
        for worker in workers:
            wait_until(lambda w=worker: "event=started" in w.output, what="the workers")
        with transaction.atomic():
            handles = [jobs.keyed.using(concurrency_key="account-7").enqueue() for _ in range(50)]
            unrelated = [jobs.keyed.enqueue() for _ in range(20)]
        wait_until(lambda: unfinished() == 0, timeout=120, what="the keyed runs")
    finally:
        stop_all(workers)
    ids = [h.id for h in handles]
    spans = sorted(
        Execution.objects.filter(run_id__in=ids)
        .values("run_id")
        .annotate(enter=Min("at"), leave=Max("at"))
        .values_list("enter", "leave")
    )
    assert len(spans) == 50
    for (_, earlier_leave), (later_enter, _) in pairwise(spans):
        assert later_enter >= earlier_leave
    assert Execution.objects.filter(run_id__in=ids).values("pid").distinct().count() > 1
    # Runs without the key were not held back to one at a time.
    assert Run.objects.filter(pk__in=[h.id for h in unrelated], status="completed").count() == 20


def test_workers_ride_out_a_postgresql_outage(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("this test stops the PostgreSQL server")
    control = os.environ.get("DURABLE_TEST_PG_CONTROL")
    if not control:
        if os.environ.get("CI"):
            pytest.fail("DURABLE_TEST_PG_CONTROL is not set; .ci/run must set it")
        pytest.skip("set DURABLE_TEST_PG_CONTROL to a command taking pg-stop / pg-start")
    enqueue_drain_runs(600)
    workers = start_workers(tmp_path, count=2)
    try:
        wait_until(lambda: unfinished() < 500, what="the drain to start")
        connection.close()
        subprocess.run([*control.split(), "pg-stop"], check=True, capture_output=True)
        time.sleep(10)
        subprocess.run([*control.split(), "pg-start"], check=True, capture_output=True)
        wait_until(lambda: unfinished() == 0, timeout=180, what="the drain after the outage")
        assert [worker.process.poll() for worker in workers] == [None, None]
    finally:
        codes = stop_all(workers)
    assert codes == [0, 0]
    assert Execution.objects.values("run_id", "step").distinct().count() == 3 * 600
    assert any("event=database_error" in worker.output for worker in workers)
