"""The engine's claims that do not depend on the database: failures and StepFailed, replay and
non-determinism, JSON results, logs and progress, signals, nested steps. Run on
InMemoryStorage by tests/unit/test_engine_memory.py and on each database by
tests/integration/test_engine.py, where the database-only claims (atomic steps, fencing,
journal-write failures) sit beside them."""

import logging
import uuid

from django_durable import RunStatus, StepFailed, get_run, job, signals
from django_durable.status import StepStatus
from django_durable.testing import run_until_idle
from tests.testapp import jobs


@job(name="tests.engine.always_fails")
def always_fails(ctx):
    ctx.step("boom", lambda: 1 / 0)


seen_failures: list[tuple[object, ...]] = []


@job(name="tests.engine.catches_step_failed", retry=jobs.NO_DELAY_RETRY)
def catches_step_failed(ctx):
    try:
        ctx.step("bad", lambda: int("x"))
    except StepFailed as failure:
        seen_failures.append(
            (ctx.attempt, failure.name, failure.error_type, type(failure.__cause__))
        )
    ctx.step("after", lambda: None)
    if ctx.attempt == 1:
        raise RuntimeError("force a second attempt that replays the failed step")
    return "done"


@job(name="tests.engine.bad_output")
def bad_output(ctx):
    return {"when": object()}


@job(name="tests.engine.chatty")
def chatty(ctx):
    for i in range(25):
        ctx.log.debug("line %d", i)


@job(name="tests.engine.three_steps")
def three_steps(ctx):
    return [ctx.step(name, lambda name=name: name) for name in ("step-1", "step-2", "step-3")]


@job(name="tests.engine.raises_in_a_step")
def raises_in_a_step(ctx):
    ctx.step("open-account", lambda: 1 / 0)


attempts: list[int] = []


@job(name="tests.engine.retry_logged")
def retry_logged(ctx):
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise TimeoutError("slow provider")
        return "ok"

    return ctx.step("call", flaky, retry=jobs.NO_DELAY_RETRY)


@job(name="tests.engine.nested")
def nested(ctx):
    return ctx.step("outer", lambda: ctx.step("inner", lambda: 1))


@job(name="tests.engine.logs_exception")
def logs_exception(ctx):
    try:
        {}["missing"]
    except KeyError:
        ctx.log.exception("lookup failed for %s", "order-9")


class EngineScenarios:
    """Subclasses provide the ``storage`` fixture (autouse: the storage the runs use) and
    ``logged``."""

    def logged(self, run_id: uuid.UUID) -> list[tuple[int, str]]:
        """The run's stored ``ctx.log`` records, oldest first: (level, message)."""
        raise NotImplementedError

    def test_without_a_retry_policy_a_failure_is_final(self, storage):
        handle = always_fails.enqueue()
        run_until_idle()
        handle.refresh()
        assert handle.status == RunStatus.FAILED and handle.attempt == 1
        assert handle.output is None
        (step,) = storage.load_journal(handle.id)
        assert (
            step.status == StepStatus.FAILED and step.error["type"] == "builtins.ZeroDivisionError"
        )
        assert "ZeroDivisionError" in handle.error["traceback"]

    def test_step_failed_is_raised_live_with_the_cause_and_on_replay(self):
        seen_failures.clear()
        handle = catches_step_failed.enqueue()
        run_until_idle()
        handle.refresh()
        assert handle.status == RunStatus.COMPLETED
        assert seen_failures == [
            (1, "bad", "builtins.ValueError", ValueError),
            (2, "bad", "builtins.ValueError", type(None)),  # replayed from the journal
        ]

    def test_non_determinism_fails_the_run_by_name_without_retrying(self):
        handle = jobs.renames_its_step.enqueue()
        run_until_idle()
        handle.refresh()
        assert handle.status == RunStatus.FAILED and handle.attempt == 2  # policy allowed 5
        assert handle.error["type"] == "django_durable.exceptions.NonDeterminismError"
        assert (
            "position 0 holds step 'charge' but the job now asks for step 'charge-card'"
            in handle.error["message"]
        )

    def test_step_returning_a_non_json_value_fails_naming_the_step_and_type(self, storage):
        handle = jobs.returns_object.enqueue()
        run_until_idle()
        handle.refresh()
        assert handle.status == RunStatus.FAILED
        assert handle.error["type"] == "builtins.TypeError"
        assert "the result of step 'make' is a builtins.object" in handle.error["message"]
        journal = [(s.name, s.status, s.result) for s in storage.load_journal(handle.id)]
        assert journal == [
            ("fine", StepStatus.COMPLETED, "kept"),
            ("make", StepStatus.FAILED, None),
        ]

    def test_non_json_output_fails_the_run(self):
        handle = bad_output.enqueue()
        run_until_idle()
        handle.refresh()
        assert handle.status == RunStatus.FAILED
        assert (
            "the output['when'] of tests.engine.bad_output is a builtins.object"
            in handle.error["message"]
        )

    def test_logs_progress_and_stdlib_logging(self, storage, caplog):
        handle = jobs.echo.enqueue(1, 2, k="v")
        with caplog.at_level(logging.INFO, logger="django_durable.job.tests.echo"):
            run_until_idle()
        handle.refresh()
        assert handle.output == {"args": [1, 2], "kwargs": {"k": "v"}}
        assert self.logged(handle.id) == [(logging.INFO, "echo (1, 2)")]
        assert storage.get_run(handle.id).progress == {"done": 1, "total": 1, "message": "done"}
        assert "echo (1, 2)" in caplog.text

    def test_many_logs_are_flushed_in_batches(self, storage, settings):
        settings.DURABLE = {"LOG_BUFFER_SIZE": 10}
        handle = chatty.enqueue()
        run_until_idle()
        assert [message for _, message in self.logged(handle.id)] == [
            f"line {i}" for i in range(25)
        ]

    def test_lifecycle_and_step_signals(self):
        events = []

        def on(name):
            def receiver(sender, run, **kwargs):
                events.append((name, kwargs["step"].name if "step" in kwargs else None))

            return receiver

        receivers = {
            signals.run_started: on("started"),
            signals.run_completed: on("completed"),
            signals.run_failed: on("failed"),
            signals.step_completed: on("step_completed"),
            signals.step_failed: on("step_failed"),
        }
        for signal, receiver in receivers.items():
            signal.connect(receiver)
        try:
            three_steps.enqueue()
            run_until_idle()
            raises_in_a_step.enqueue()
            run_until_idle()
        finally:
            for signal, receiver in receivers.items():
                signal.disconnect(receiver)
        assert events == [
            ("started", None),
            ("step_completed", "step-1"),
            ("step_completed", "step-2"),
            ("step_completed", "step-3"),
            ("completed", None),
            ("started", None),
            ("step_failed", "open-account"),
            ("failed", None),
        ]

    def test_failed_step_attempts_are_logged_with_their_error(self, storage):
        attempts.clear()
        handle = retry_logged.enqueue()
        run_until_idle()
        (line,) = [message for _, message in self.logged(handle.id)]
        assert "step 'call' attempt 1 failed (builtins.TimeoutError: slow provider)" in line

    def test_a_step_inside_a_step_is_refused(self):
        handle = nested.enqueue()
        run_until_idle()
        handle.refresh()
        assert handle.status == RunStatus.FAILED
        assert (
            "ctx.step('inner') was called inside the function of step 'outer'"
            in handle.error["message"]
        )

    def test_log_exception_keeps_the_traceback(self, storage):
        handle = logs_exception.enqueue()
        run_until_idle()
        ((level, message),) = self.logged(handle.id)
        assert level == logging.ERROR
        assert message.startswith("lookup failed for order-9\nTraceback (most recent call last):")
        assert "KeyError: 'missing'" in message
        assert get_run(handle.id).status == RunStatus.COMPLETED
