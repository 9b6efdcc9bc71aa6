"""ctx.log is replay-aware: the stored log of a run reads as one execution across sleeps,
an event wait, a new attempt and a step retry's timer. Run on InMemoryStorage by
tests/unit/test_replay_logs_memory.py and on each database by
tests/integration/test_replay_logs.py, with time_travel() moving the clock."""

import logging
from collections import Counter
from datetime import timedelta

from django.test import override_settings

from django_durable import RetryPolicy, RunStatus, get_run, job, send_event
from django_durable.testing import TimeTravel, run_until_idle, time_travel


def drive(handle, clock: TimeTravel, limit=100):
    """Run the run, moving the clock on whenever nothing is due, until it ends."""
    for _ in range(limit):
        if get_run(handle.id).is_finished:
            return get_run(handle.id)
        if not run_until_idle():
            clock.advance(1)
    raise AssertionError(f"run still {get_run(handle.id).status}")


@job(name="tests.replay_logs_scenarios.sleeps_twice")
def sleeps_twice(ctx, amount):
    ctx.log.info("starting")
    ctx.step("reserve", lambda: ctx.log.info("inside reserve"))
    ctx.log.info("charged %s EUR", amount)
    ctx.sleep("first nap", timedelta(minutes=10))
    ctx.log.info("after the first nap")
    ctx.step("ship", lambda: None)
    ctx.sleep("second nap", timedelta(minutes=10))
    ctx.log.info("done")
    return "shipped"


@job(name="tests.replay_logs_scenarios.waits_for_approval")
def waits_for_approval(ctx):
    ctx.log.info("asked for approval")
    approved = ctx.wait_for_event("approval")
    ctx.log.info("approved by %s", approved["by"])
    return approved


@job(
    name="tests.replay_logs_scenarios.failed_step_resumed",
    retry=RetryPolicy(max_attempts=2, initial_delay=0, jitter=0),
)
def failed_step_resumed(ctx):
    def flaky():
        if ctx.attempt == 1:
            raise RuntimeError("not yet")
        return "ok"

    ctx.log.info("before")
    ctx.step("one", lambda: 1)
    ctx.log.info("between")
    ctx.step("flaky", flaky)
    ctx.log.info("after")


calls: Counter = Counter()


@job(name="tests.replay_logs_scenarios.step_retry_waits")
def step_retry_waits(ctx):
    def flaky():
        calls[ctx.run_id] += 1
        if calls[ctx.run_id] == 1:
            raise RuntimeError("busy")
        ctx.log.info("inside, second try")

    ctx.log.info("before")
    ctx.step("flaky", flaky, retry=RetryPolicy(max_attempts=2, initial_delay=60, jitter=0))
    ctx.log.info("after")


class ReplayLogScenarios:
    """Subclasses provide the ``storage`` fixture (autouse) and ``stored``."""

    def stored(self, handle) -> list[tuple[int, str]]:
        """The run's stored ``ctx.log`` records, oldest first: (attempt, message)."""
        raise NotImplementedError

    def test_a_job_that_logs_between_steps_and_sleeps_twice_stores_each_line_once(self, caplog):
        handle = sleeps_twice.enqueue("129.00")
        with caplog.at_level(logging.INFO, logger="django_durable.job"), time_travel() as clock:
            assert run_until_idle() == 1
            assert get_run(handle.id).status == RunStatus.WAITING
            clock.advance(timedelta(minutes=10, seconds=1))
            assert run_until_idle() == 1
            clock.advance(timedelta(minutes=10, seconds=1))
            assert run_until_idle() == 1
        run = get_run(handle.id)
        assert (run.status, run.output) == (RunStatus.COMPLETED, "shipped")
        assert self.stored(handle) == [
            (1, "starting"),
            (1, "inside reserve"),
            (1, "charged 129.00 EUR"),
            (1, "after the first nap"),
            (1, "done"),
        ]
        # Python logging still sees every record, the replayed ones marked as such.
        seen = Counter(
            (r.getMessage(), r.replayed)
            for r in caplog.records
            if r.name.endswith(sleeps_twice.name)
        )
        assert seen[("charged 129.00 EUR", False)] == 1
        assert seen[("charged 129.00 EUR", True)] == 2  # replayed after each nap
        assert seen[("after the first nap", True)] == 1
        assert all(r.run_id == str(handle.id) for r in caplog.records if hasattr(r, "replayed"))

    def test_logs_before_an_event_wait_are_stored_once(self):
        handle = waits_for_approval.enqueue()
        run_until_idle()
        assert get_run(handle.id).status == RunStatus.WAITING
        send_event(handle.id, "approval", {"by": "ann"})
        with time_travel() as clock:
            drive(handle, clock)
        assert self.stored(handle) == [(1, "asked for approval"), (1, "approved by ann")]

    def test_a_new_attempt_resuming_a_failed_step_does_not_store_the_logs_before_it_again(self):
        handle = failed_step_resumed.enqueue()
        with time_travel() as clock:
            run = drive(handle, clock)
        assert (run.status, run.attempt) == (RunStatus.COMPLETED, 2)
        assert self.stored(handle) == [(1, "before"), (1, "between"), (2, "after")]

    @override_settings(DURABLE={"STEP_RETRY_SLEEP_LIMIT": 0.01})
    def test_a_step_retry_the_run_waited_for_stores_each_line_once(self):
        handle = step_retry_waits.enqueue()
        with time_travel() as clock:
            run_until_idle()
            assert get_run(handle.id).status == RunStatus.WAITING  # the retry is a durable timer
            assert run_until_idle() == 0  # its 60 s have not passed
            clock.advance(61)
            drive(handle, clock)
        messages = [message for _, message in self.stored(handle)]
        assert messages[0] == "before"
        assert messages[1].startswith("step 'flaky' attempt 1 failed (builtins.RuntimeError: busy)")
        assert messages[2:] == ["inside, second try", "after"]
