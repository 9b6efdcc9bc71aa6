"""A worker frozen past STALE_AFTER (SIGSTOP) whose run another worker took over and
completed runs nothing and writes nothing once it wakes up (SIGCONT).

The frozen worker is started with DURABLE_TEST_ZOMBIE: at the place under test its job
waits until the run was completed elsewhere, then long enough for its own heartbeat to
run, so it always wakes up to a run that is no longer its own (see tests/testapp/jobs.py).
"""

import signal

import pytest
from django.db import connection

from django_durable import RunStatus
from django_durable.models import Run, RunLog, Step
from tests.testapp import jobs
from tests.testapp.models import Execution
from tests.workers import WorkerProcess, wait_until

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # SQLite has one write lock: a worker frozen inside any of its write transactions (a
    # heartbeat, a sweep) holds it, and no other worker can take anything over until it
    # wakes. The guard is the same code on every database.
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="a frozen SQLite writer blocks every takeover"
    ),
]

STALE_AFTER = 2.0


def snapshot(run_id):
    """Everything stored about the run, and every step body execution it caused."""
    return (
        Run.objects.filter(pk=run_id).values().get(),
        list(Step.objects.filter(run_id=run_id).order_by("position").values()),
        list(RunLog.objects.filter(run_id=run_id).order_by("pk").values()),
        list(Execution.objects.filter(run_id=run_id).order_by("pk").values_list("step", "pid")),
    )


def executed(run_id, step):
    return list(Execution.objects.filter(run_id=run_id, step=step).values_list("pid", flat=True))


def freeze_take_over_and_wake(tmp_path, job, frozen_at):
    """Run ``job`` on a zombie worker, SIGSTOP it once step ``frozen_at`` has executed
    there, let a second worker take the run over and complete it, then SIGCONT the
    zombie and wait until it has given the run up. Returns (run id, zombie pid, taker
    pid, what was stored when the run completed)."""
    handle = job.enqueue()
    zombie = WorkerProcess(
        tmp_path / "zombie.log", stale_after=STALE_AFTER, DURABLE_TEST_ZOMBIE="1"
    )
    taker = None
    try:
        wait_until(lambda: executed(handle.id, frozen_at), what=f"step {frozen_at} on the zombie")
        zombie.process.send_signal(signal.SIGSTOP)
        taker = WorkerProcess(tmp_path / "taker.log", stale_after=STALE_AFTER)
        wait_until(
            lambda: Run.objects.get(pk=handle.id).status == RunStatus.COMPLETED,
            timeout=60,
            what="the taker to complete the run",
        )
        completed = snapshot(handle.id)
        zombie.process.send_signal(signal.SIGCONT)
        wait_until(
            lambda: f"run={handle.id} job={job.name} outcome=lease_lost" in zombie.output,
            what="the zombie to give the run up",
        )
    finally:
        zombie.process.send_signal(signal.SIGCONT)
        assert zombie.terminate() == 0, zombie.output
        if taker is not None:
            assert taker.terminate() == 0, taker.output
    assert snapshot(handle.id) == completed, "the zombie wrote something"
    assert "event=lease_not_renewed" in zombie.output or "no heartbeat succeeded" in zombie.output
    return handle.id, zombie.process.pid, taker.process.pid, completed


def test_a_zombie_frozen_between_steps_starts_no_step(tmp_path):
    run_id, zombie, taker, (run, steps, _, _) = freeze_take_over_and_wake(
        tmp_path, jobs.zombie_between_steps, "a"
    )
    # Step a's checkpoint was committed before the freeze: it never ran again; b and c
    # ran once, on the taker, and never on the woken zombie.
    assert executed(run_id, "a") == [zombie]
    assert executed(run_id, "b") == [taker]
    assert executed(run_id, "c") == [taker]
    assert run["output"] == [zombie, taker, taker]
    assert [step["name"] for step in steps] == ["a", "b", "c"]


def test_a_zombie_frozen_inside_a_step_starts_no_further_step(tmp_path):
    run_id, zombie, taker, (run, _, _, _) = freeze_take_over_and_wake(
        tmp_path, jobs.zombie_in_step, "b"
    )
    assert executed(run_id, "a") == [zombie]
    # b's checkpoint was not committed when the zombie froze, so the taker ran it again
    # (at least once, as promised); the zombie's finished b is never stored, and c, which
    # the taker committed, never starts on the zombie.
    assert executed(run_id, "b") == [zombie, taker]
    assert executed(run_id, "c") == [taker]
    assert run["output"] == [zombie, taker, taker]


def test_a_zombie_frozen_in_a_retry_backoff_does_not_retry(tmp_path):
    run_id, zombie, taker, (run, steps, logs, _) = freeze_take_over_and_wake(
        tmp_path, jobs.zombie_in_retry, "r"
    )
    assert executed(run_id, "a") == [zombie]
    # The zombie's first attempt failed and it froze in the backoff; the taker ran r
    # (its checkpoint was not committed) and completed the run; the zombie never retried.
    assert executed(run_id, "r") == [zombie, taker]
    assert executed(run_id, "c") == [taker]
    assert run["output"] == [zombie, taker, taker]
    assert next(step for step in steps if step["name"] == "r")["attempts"] == 1
    # The zombie's buffered "retrying" log line never landed.
    assert not any("retrying" in log["message"] for log in logs)
