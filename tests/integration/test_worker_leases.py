"""The worker trusts only the leases the database renewed."""

import functools
import logging
import time
import uuid

import pytest

from django_durable import job
from django_durable.conf import durable_settings
from django_durable.exceptions import LeaseLost
from django_durable.held_runs import Held
from django_durable.models import Run, RunLog, Step
from django_durable.runner import execute_run
from django_durable.storage import get_storage
from django_durable.worker import Worker
from tests.testapp import jobs
from tests.testapp.models import Account

pytestmark = pytest.mark.django_db(transaction=True)


def due_for_a_heartbeat(worker):
    """Make every lease due for renewal, though not stale by the worker's clock."""
    for active in worker._held.runs.values():
        active.renewed_at = time.monotonic() - durable_settings.heartbeat_interval - 0.1


def test_a_lease_taken_over_is_not_renewed_and_its_run_is_abandoned():
    kept, taken = jobs.echo.enqueue(1), jobs.echo.enqueue(2)
    worker = Worker(jobs={jobs.echo.name: jobs.echo}, concurrency=2)
    assert len(worker._claim()) == 2
    guards = {run_id: worker._held.guard(run_id) for run_id in (kept.id, taken.id)}
    # Another worker took one run over (as after this worker was frozen past STALE_AFTER).
    Run.objects.filter(pk=taken.id).update(lease_owner="other", lease_token=uuid.uuid4())
    due_for_a_heartbeat(worker)
    worker._held.heartbeat_if_due()
    guards[kept.id]()  # renewed: the job may go on
    with pytest.raises(LeaseLost, match="did not renew"):
        guards[taken.id]()
    # It is not heartbeated again, and stays lost even though its clock looks fresh.
    worker._held.runs[taken.id].renewed_at = time.monotonic()
    worker._held.heartbeat_if_due()
    with pytest.raises(LeaseLost):
        guards[taken.id]()


def test_a_run_that_ended_before_the_heartbeat_read_it_back_is_not_lost(caplog):
    handle = jobs.echo.enqueue(1)
    worker = Worker(jobs={jobs.echo.name: jobs.echo})
    (claimed,) = worker._claim()
    active = worker._held.runs[handle.id]
    execute_run(
        worker.storage,
        claimed,
        jobs.echo,
        before_operation=worker._held.guard(handle.id),
        before_end=functools.partial(worker._held.ending, handle.id, active),
    )
    # The heartbeat reads the run back after its completion committed, before the slot
    # thread removed the run's entry: the lease is gone because the run gave it up.
    due_for_a_heartbeat(worker)
    with caplog.at_level(logging.WARNING, logger="django_durable"):
        worker._held.heartbeat_if_due()
    assert Run.objects.get(pk=handle.id).status == "completed"
    assert "lease_not_renewed" not in caplog.text
    assert not active.lost


def test_an_execution_whose_run_was_claimed_anew_is_stopped():
    handle = jobs.echo.enqueue(1)
    worker = Worker(jobs={jobs.echo.name: jobs.echo})
    worker._claim()
    old_guard = worker._held.guard(handle.id)
    old = worker._held.runs[handle.id]
    # The run was recovered and claimed again by this same worker while the first
    # execution was frozen: a new lease, a new entry.
    worker._held.runs[handle.id] = Held(lease=old.lease, renewed_at=time.monotonic())
    worker._held.guard(handle.id)()
    with pytest.raises(LeaseLost, match="no longer holds"):
        old_guard()


class LosesTheLeaseAfter:
    """A guard that vouches for the lease ``calls`` times, then reports it lost."""

    def __init__(self, calls):
        self.left = calls

    def __call__(self):
        self.left -= 1
        if self.left < 0:
            raise LeaseLost("lost for the test")


def claim(job):
    (claimed,) = get_storage().claim(owner="w", job_names=[job.name], queues=None, limit=1)
    return claimed


def test_a_step_retry_checks_the_lease_before_the_next_attempt():
    attempts = []

    @job(name="tests.retry_checks_lease")
    def retry_checks_lease(ctx):
        def flaky():
            attempts.append(1)
            raise ConnectionError("again")

        return ctx.step("flaky", flaky, retry=jobs.NO_DELAY_RETRY)

    retry_checks_lease.enqueue()
    claimed = claim(retry_checks_lease)
    # The operation's guard and the first attempt's pass; the lease is gone by the retry.
    guard = LosesTheLeaseAfter(2)
    assert execute_run(get_storage(), claimed, retry_checks_lease, before_operation=guard) is None
    assert attempts == [1]
    assert not Step.objects.filter(run_id=claimed.run.id).exists()


def test_an_atomic_step_body_does_not_start_without_the_lease():
    jobs.atomic_ok.enqueue("dave")
    claimed = claim(jobs.atomic_ok)
    # The operation's guard passes; the one inside the fenced transaction does not.
    guard = LosesTheLeaseAfter(1)
    assert execute_run(get_storage(), claimed, jobs.atomic_ok, before_operation=guard) is None
    assert not Account.objects.filter(owner="dave").exists()
    assert not Step.objects.filter(run_id=claimed.run.id).exists()


def test_a_flush_checks_the_lease(settings):
    settings.DURABLE = {"LOG_BUFFER_SIZE": 2}

    @job(name="tests.logs_a_lot")
    def logs_a_lot(ctx):
        ctx.step("one", lambda: 1)
        for i in range(5):
            ctx.log.info("line %s", i)

    logs_a_lot.enqueue()
    claimed = claim(logs_a_lot)
    guard = LosesTheLeaseAfter(2)  # the step and its body; lost by the first log flush
    assert execute_run(get_storage(), claimed, logs_a_lot, before_operation=guard) is None
    assert not RunLog.objects.filter(run_id=claimed.run.id).exists()
    assert not Step.objects.filter(run_id=claimed.run.id).exists()
