"""Relative times count from the database clock, not the enqueuing host's wall clock."""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_durable import RunStatus, get_run, job
from django_durable.models import Run
from django_durable.storage import get_storage
from django_durable.testing import run_until_idle
from tests.workers import ROOT

DELAY = timedelta(seconds=5)


@job(name="tests.db_clock.reports_db_time")
def reports_db_time(ctx):
    return ctx.step("now", lambda: get_storage().now().isoformat())


@pytest.fixture
def skewed_clock(monkeypatch):
    """Make this process's wall clock (django.utils.timezone.now) wrong by ``offset``."""
    real_now = timezone.now

    def skew(offset):
        monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    yield skew
    monkeypatch.setattr(timezone, "now", real_now)


def run_when_due(run_id, timeout=30.0):
    """Execute runnable runs until ``run_id`` finished; its output is when it ran (db clock)."""
    deadline = time.monotonic() + timeout
    while not get_run(run_id).is_finished:
        assert time.monotonic() < deadline, "the run never became due"
        if not run_until_idle():
            time.sleep(0.05)
    run = get_run(run_id)
    assert run.status == RunStatus.COMPLETED
    return dt.datetime.fromisoformat(run.output)


@pytest.mark.django_db
@pytest.mark.parametrize("offset", [timedelta(hours=1), timedelta(hours=-1)])
def test_a_delay_counts_from_the_database_clock_whatever_the_enqueuers_clock(skewed_clock, offset):
    storage = get_storage()
    skewed_clock(offset)
    assert abs((timezone.now() - storage.now()) - offset) < timedelta(seconds=5)
    before = storage.now()
    handle = reports_db_time.using(run_after=DELAY).enqueue()
    after = storage.now()
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.wake_at) == (RunStatus.WAITING, run.run_after)
    assert before + DELAY <= run.run_after <= after + DELAY
    assert run_until_idle() == 0  # not due yet, however wrong the enqueuer's clock
    ran_at = run_when_due(handle.id)
    assert ran_at >= before + DELAY


@pytest.mark.django_db
def test_a_delay_in_seconds_is_the_same(skewed_clock):
    storage = get_storage()
    skewed_clock(timedelta(hours=-1))
    before = storage.now()
    handle = reports_db_time.using(run_after=2).enqueue()
    run = Run.objects.get(pk=handle.id)
    assert before + timedelta(seconds=2) <= run.run_after <= storage.now() + timedelta(seconds=2)


@pytest.mark.django_db
def test_an_immediate_runs_place_in_line_comes_from_the_database_clock(skewed_clock):
    storage = get_storage()
    skewed_clock(timedelta(hours=1))  # an enqueuer an hour ahead goes first...
    first = reports_db_time.enqueue()
    time.sleep(0.01)  # SQLite's clock has millisecond resolution; equal times fall to the id
    skewed_clock(timedelta(hours=-1))  # ...of one an hour behind, enqueued after it
    second = reports_db_time.enqueue()
    records = {record.id: record for record in map(storage.get_run, (first.id, second.id))}
    assert records[first.id].run_after < records[second.id].run_after
    for record in records.values():
        assert abs(record.run_after - storage.now()) < timedelta(seconds=5)
        assert record.status == RunStatus.PENDING
    # The claim takes them in the order the database saw them, not by the enqueuers' clocks.
    order = [
        claimed.run.id
        for _ in range(2)
        for claimed in storage.claim(
            owner="test", job_names=[reports_db_time.name], queues=None, limit=1
        )
    ]
    assert order == [first.id, second.id]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (Debian package)")
def test_a_run_enqueued_from_a_host_an_hour_ahead_starts_after_its_delay_by_the_database_clock():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite's clock is the enqueuing process's own clock, which faketime moves")
    script = (
        "import json, django\n"
        "from datetime import timedelta\n"
        "django.setup()\n"
        "from django.utils import timezone\n"
        "from django_durable import job\n"
        "j = job(name='tests.db_clock.reports_db_time')(lambda ctx: None)\n"
        "h = j.using(run_after=timedelta(seconds=5)).enqueue()\n"
        "print(json.dumps({'id': str(h.id), 'clock': timezone.now().isoformat()}))\n"
    )
    storage = get_storage()
    before = storage.now()
    enqueued = subprocess.run(
        ["faketime", "-f", "+1h", sys.executable, "-c", script],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "PYTHONPATH": str(ROOT),
            "DURABLE_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    after = storage.now()
    printed = json.loads(enqueued.stdout.strip().splitlines()[-1])
    # The enqueuing process really believed it was an hour later.
    assert dt.datetime.fromisoformat(printed["clock"]) - after > timedelta(minutes=59)
    run = Run.objects.get(pk=printed["id"])
    assert run.status == RunStatus.WAITING
    assert before + DELAY <= run.run_after <= after + DELAY
    ran_at = run_when_due(run.pk)
    assert ran_at >= before + DELAY
    assert ran_at - after < DELAY + timedelta(seconds=20)  # not an hour late


@job(name="tests.db_clock.starts_children")
def starts_children(ctx):
    later = ctx.start_child(reports_db_time.using(run_after=DELAY))
    now = ctx.start_children(reports_db_time, [{}, {}])
    return [str(later.id), *(str(child.id) for child in now)]


@pytest.mark.django_db
def test_children_get_their_times_from_the_database_clock(skewed_clock):
    storage = get_storage()
    skewed_clock(timedelta(hours=1))
    before = storage.now()
    parent = starts_children.enqueue()
    assert run_until_idle(max_runs=1) == 1
    after = storage.now()
    later, *now = (Run.objects.get(pk=pk) for pk in get_run(parent.id).output)
    assert (later.status, later.wake_at) == (RunStatus.WAITING, later.run_after)
    assert before + DELAY <= later.run_after <= after + DELAY
    for child in now:
        assert child.status == RunStatus.PENDING
        assert before - timedelta(seconds=1) <= child.run_after <= after + timedelta(seconds=1)
