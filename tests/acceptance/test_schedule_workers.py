"""Schedules with real workers: three processes produce the ticks of one schedule, one of
them SIGKILLed and restarted twice, and every tick starts one run; overlap="skip" with
runs slower than the period never has two at once."""

import time
from datetime import timedelta
from itertools import pairwise

import pytest

from django_durable import RunStatus
from django_durable.models import Run, Schedule, ScheduleTick
from django_durable.status import TickStatus
from tests.testapp import jobs
from tests.workers import WorkerProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

SECONDS = 15  # how long the schedule fires
KILL_AT = (5, 10)  # seconds into it, the first worker is killed and started again


def test_every_tick_starts_exactly_one_run_while_workers_die(tmp_path):
    every_second = Schedule.objects.create(
        name="every second", job_name=jobs.tick.name, cron="* * * * * *"
    )
    workers = [WorkerProcess(tmp_path / f"w{i}.log", "--concurrency", "2") for i in range(3)]
    try:
        # Three workers starting on a loaded machine can take a while to boot.
        wait_until(
            lambda: Run.objects.filter(scheduled_at__isnull=False).exists(),
            timeout=90,
            what="a first tick",
        )
        started = time.monotonic()
        for n, kill_at in enumerate(KILL_AT):
            time.sleep(max(0.0, started + kill_at - time.monotonic()))
            workers[0].kill()  # SIGKILL: mid-transaction, maybe holding the schedule's row
            workers[0] = WorkerProcess(tmp_path / f"restarted{n}.log", "--concurrency", "2")
        time.sleep(max(0.0, started + SECONDS - time.monotonic()))
        Schedule.objects.filter(pk=every_second.pk).update(enabled=False)
        time.sleep(1.5)  # a pass that read the schedule as enabled finishes
        wait_until(
            lambda: not Run.objects.unfinished().exists(), timeout=60, what="every run to finish"
        )
    finally:
        for worker in workers:
            worker.terminate()

    runs = list(Run.objects.order_by("scheduled_at"))
    ticks = [run.scheduled_at for run in runs]
    assert len(ticks) >= SECONDS
    assert len(set(ticks)) == len(ticks), "a tick started two runs"
    gaps = [(a, b) for a, b in pairwise(ticks) if b - a != timedelta(seconds=1)]
    assert gaps == [], "ticks were missed while workers were alive"
    assert ScheduleTick.objects.filter(schedule=every_second).count() == len(runs)
    assert all(tick.microsecond == 0 for tick in ticks)
    for run in runs:
        assert run.status == RunStatus.COMPLETED, run
        assert run.output == {"label": "tick", "scheduled_at": run.scheduled_at.isoformat()}
        assert run.schedule_tick.schedule_id == every_second.pk


def test_overlap_skip_never_runs_two_at_once_and_records_the_skipped_ticks(tmp_path):
    slow = Schedule.objects.create(
        name="slow",
        job_name=jobs.tick.name,
        cron="* * * * * *",
        kwargs={"pause": 2.5},
        overlap="skip",
    )
    workers = [WorkerProcess(tmp_path / f"w{i}.log", "--concurrency", "2") for i in range(2)]
    try:
        wait_until(lambda: Run.objects.filter(status=RunStatus.COMPLETED).count() >= 3, timeout=40)
        Schedule.objects.filter(pk=slow.pk).update(enabled=False)
        time.sleep(1.5)
        wait_until(lambda: not Run.objects.unfinished().exists(), timeout=30)
    finally:
        for worker in workers:
            worker.terminate()

    runs = list(Run.objects.order_by("started_at"))
    for earlier, later in pairwise(runs):
        assert later.started_at >= earlier.finished_at, "two runs of the schedule at once"
    skipped = ScheduleTick.objects.filter(schedule=slow, status=TickStatus.SKIPPED)
    assert skipped.count() >= 2 * (len(runs) - 1)
    assert all("previous run is unfinished" in tick.reason for tick in skipped)
