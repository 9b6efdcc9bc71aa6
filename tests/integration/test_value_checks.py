"""Values no database would store unchanged are refused where they enter, naming their
place: at enqueue, at send_event, at a step's return, at a job's return, at
ctx.progress(), at decoration for bounded names. What the engine stores itself (log lines,
error messages, tracebacks) is escaped instead, so no value ever crash-loops a run.

Every test stores what was accepted in the database under test, so each rule is shown to
be enough on PostgreSQL (jsonb), MariaDB (its JSON check) and SQLite alike.
"""

import math

import pytest
from django.db import IntegrityError, connection, transaction

from django_durable import InvalidEventName, RunStatus, get_run, job, send_event
from django_durable.models import Run, RunEvent, RunLog, Step
from django_durable.payloads import MAX_DEPTH
from django_durable.testing import run_until_idle
from tests.testapp import jobs


def nested(levels, leaf=1):
    """``levels`` lists, one inside the other."""
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


# Each bad value, what its error says, and where it sits under the value passed.
BAD = {
    "nul": ("a\x00b", "contains a NUL character ('\\x00') at index 1"),
    "surrogate": ("a\ud800", "contains a lone surrogate ('\\ud800') at index 1"),
    "deep": (nested(5000), f"nested {MAX_DEPTH + 1} levels deep"),
    "float-1e16": (1e16, "is the float 1e+16, which PostgreSQL's jsonb gives back as an integer"),
    "negative-zero": (-0.0, "is -0.0, which PostgreSQL's jsonb gives back as 0"),
    "nan": (math.nan, "is nan, which JSON cannot represent"),
    "nul-key": ({"k\x00": 1}, "has the key 'k\\x00': it contains a NUL character"),
    "surrogate-key": ({"\udfff": 1}, "has the key '\\udfff': it contains a lone surrogate"),
}
CASES = pytest.mark.parametrize("case", list(BAD))


def bad_items(case):
    """The bad value as the fourth of some items: its place is ``['items'][3]``."""
    return {"items": [0, 1, 2, BAD[case][0]]}


def assert_names_place(error, place, owner, case):
    """The message starts with the value's place (the deep value's goes on deeper) and
    what it belongs to, then says what is wrong with it."""
    message = str(error)
    assert isinstance(error, ValueError), repr(error)
    assert message.startswith(place), message
    assert f" of {owner} " in message, message
    assert BAD[case][1] in message


# -- at enqueue ---------------------------------------------------------------------------


@pytest.mark.django_db
@CASES
def test_enqueue_refuses_a_bad_argument_naming_its_place(case):
    with pytest.raises(ValueError) as raised:
        jobs.echo.enqueue(**bad_items(case))
    assert_names_place(raised.value, "kwargs['items'][3]", "tests.echo", case)
    with pytest.raises(ValueError) as raised:
        jobs.echo.enqueue(1, BAD[case][0])
    assert_names_place(raised.value, "args[1]", "tests.echo", case)
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_enqueue_refuses_a_bad_keyword_name():
    with pytest.raises(ValueError, match=r"kwargs of tests\.echo has the key 'a\\x00': it"):
        jobs.echo.enqueue(**{"a\x00": 1})
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_accepted_values_come_back_identical_from_the_database():
    floats = [1e15 + 0.5, 9999999999999998.0, -1e15, 1e-7, 5e-324, 0.0, -1.5, 1 / 3, 2**70]
    text = "é\u2028\U0001f600\\x00"
    handle = jobs.echo.enqueue(floats, text=text)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.COMPLETED
    # repr() tells 1e16 from 10000000000000000 and -0.0 from 0.0: the values, and types.
    assert repr(run.args) == repr([floats])
    assert repr(run.output) == repr({"args": [floats], "kwargs": {"text": text}})


@job(name="tests.values.returns_it")
def returns_it(ctx, value):
    return ctx.step("same", lambda: value)


@job(name="tests.values.passes_it_on")
def passes_it_on(ctx, value):
    # The value sits one level down in the child's args, two in this journal's entry.
    (output,) = ctx.wait_for_children([ctx.start_child(returns_it, value)])
    return output == value


@pytest.mark.django_db
def test_a_value_at_the_depth_limit_is_stored_wherever_the_engine_nests_it():
    deepest = nested(MAX_DEPTH)
    handle = passes_it_on.enqueue(deepest)
    run_until_idle()
    parent = Run.objects.get(pk=handle.id)
    assert (parent.status, parent.output) == (RunStatus.COMPLETED, True), parent.errors
    child = Run.objects.get(parent_id=handle.id)
    assert (child.args, child.output) == ([deepest], deepest)
    with pytest.raises(ValueError, match=f"args\\[0\\](\\[0\\]){{{MAX_DEPTH}}} of "):
        passes_it_on.enqueue(nested(MAX_DEPTH + 1))


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="jsonb's own behaviour")
def test_why_floats_are_limited_jsonb_gives_them_back_changed():
    handle = jobs.echo.enqueue()
    Run.objects.filter(pk=handle.id).update(output=[1e16, -0.0, 1e15 + 0.5])
    assert repr(Run.objects.get(pk=handle.id).output) == repr([10**16, 0.0, 1e15 + 0.5])


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "mysql", reason="MariaDB's JSON check")
def test_why_depth_is_limited_mariadb_refuses_documents_32_levels_deep():
    if not connection.mysql_is_mariadb:
        pytest.skip("MySQL has a JSON type of its own")
    handle = jobs.echo.enqueue()
    Run.objects.filter(pk=handle.id).update(output=nested(31))
    with pytest.raises(IntegrityError), transaction.atomic():
        Run.objects.filter(pk=handle.id).update(output=nested(32))


# -- bounded names, at decoration and at using() ------------------------------------------


def plain(ctx):
    return None


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"queue_name": "q" * 150}, ValueError, "queue_name of job 'tests.values.named' must "),
        ({"queue_name": "q" * 101}, ValueError, "at most 100 characters, got 101 characters"),
        ({"queue_name": "a\x00"}, ValueError, "queue_name of job 'tests.values.named' contains"),
        ({"queue_name": 5}, TypeError, "queue_name of job 'tests.values.named' must be a str"),
        ({"name": "n" * 256}, ValueError, "the job name must be a non-empty string of at most 255"),
        ({"name": "tests.\ud800"}, ValueError, "the job name contains a lone surrogate"),
    ],
)
def test_bounded_names_are_refused_at_decoration(options, error, message):
    with pytest.raises(error) as raised:
        job(**{"name": "tests.values.named", **options})(plain)
    assert message in str(raised.value)
    assert "tests.values.named" not in _registered()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"queue_name": "q" * 150}, "queue_name of job 'tests.echo' must be a non-empty string"),
        ({"idempotency_key": "k\x00"}, "idempotency_key of job 'tests.echo' contains a NUL"),
        ({"idempotency_key": "k" * 256}, "at most 255 characters, got 256 characters"),
        ({"concurrency_key": "\ud800"}, "concurrency_key of job 'tests.echo' contains a lone"),
    ],
)
def test_bounded_names_are_refused_at_using_before_anything_is_stored(options, message):
    with pytest.raises(ValueError) as raised:
        jobs.echo.using(**options).enqueue()
    assert message in str(raised.value)
    assert not Run.objects.exists()


def _registered():
    from django_durable import registered_jobs

    return registered_jobs()


# -- at send_event --------------------------------------------------------------------------


@pytest.mark.django_db
@CASES
def test_send_event_refuses_a_bad_payload_naming_its_place(case):
    waiting = jobs.two_events.enqueue()
    run_until_idle()
    with pytest.raises(ValueError) as raised:
        send_event(waiting.id, "item", bad_items(case))
    assert_names_place(raised.value, "the payload['items'][3]", "event 'item'", case)
    assert not RunEvent.objects.exists()
    assert get_run(waiting.id).status == RunStatus.WAITING


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("go\x00", "an event name contains a NUL character"),
        ("\ud800", "an event name contains a lone surrogate"),
        ("e" * 256, "at most 255 characters, got 256 characters"),
    ],
)
def test_send_event_refuses_a_bad_name(name, message):
    waiting = jobs.two_events.enqueue()
    run_until_idle()
    with pytest.raises(InvalidEventName, match=message):
        send_event(waiting.id, name, 1)
    assert not RunEvent.objects.exists()


# -- inside a job: a step's return, the job's return, progress, names ------------------------


@job(name="tests.values.step_returns")
def step_returns(ctx, case):
    try:
        ctx.step("make", lambda: bad_items(case))
    except (TypeError, ValueError) as error:
        return str(error)
    return "stored"


@pytest.mark.django_db
@CASES
def test_a_step_returning_a_bad_value_raises_at_the_step_naming_its_place(case):
    handle = step_returns.enqueue(case)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.COMPLETED
    assert_names_place(ValueError(run.output), "the result['items'][3]", "step 'make'", case)
    (step,) = Step.objects.filter(run_id=handle.id)
    assert (step.name, step.status, step.attempts) == ("make", "failed", 1)
    assert BAD[case][1] in step.error["message"]


@job(name="tests.values.job_returns")
def job_returns(ctx, case):
    return bad_items(case)


@pytest.mark.django_db
@CASES
def test_a_job_returning_a_bad_value_fails_once_naming_its_place(case):
    handle = job_returns.enqueue(case)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.output, run.recoveries) == (RunStatus.FAILED, None, 0)
    (error,) = run.errors
    owner = "tests.values.job_returns"
    assert_names_place(ValueError(error["message"]), "the output['items'][3]", owner, case)


@job(name="tests.values.reports")
def reports(ctx, case):
    try:
        ctx.progress(1, 2, BAD[case][0])
    except ValueError as error:
        return str(error)
    return "reported"


@pytest.mark.django_db
@pytest.mark.parametrize("case", ["nul", "surrogate"])
def test_a_bad_progress_message_raises_at_the_call(case):
    handle = reports.enqueue(case)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.output.startswith("progress['message'] ")
    assert BAD[case][1] in run.output
    assert run.progress is None


OPERATION_NAMES = {"nul": "s\x00", "long": "s" * 256, "surrogate": "\ud800"}


@job(name="tests.values.names_an_operation")
def names_an_operation(ctx, method, case):
    # Built here: the bad name could not reach the job through its stored arguments.
    name = OPERATION_NAMES[case]
    try:
        if method == "step":
            ctx.step(name, lambda: 1)
        else:
            ctx.wait_for_event(name)
    except ValueError as error:
        return str(error)
    return "ran"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "case", "message"),
    [
        ("step", "nul", "the name of ctx.step() contains a NUL character"),
        ("step", "long", "the name of ctx.step() must be a non-empty string of at most 255"),
        ("event", "surrogate", "the name of ctx.wait_for_event() contains a lone surrogate"),
    ],
)
def test_a_bad_operation_name_raises_at_the_call(method, case, message):
    handle = names_an_operation.enqueue(method, case)
    run_until_idle()
    run = Run.objects.get(pk=handle.id)
    assert run.status == RunStatus.COMPLETED
    assert message in run.output
    assert not Step.objects.filter(run_id=handle.id).exists()


# -- what the engine stores itself: escaped, never a crash loop -------------------------------


@job(name="tests.values.logs_and_raises")
def logs_and_raises(ctx, raise_too):
    ctx.log.info("odd: %s|%s", "\ud800", "\x00")
    ctx.step("after-log", lambda: "ok")
    if raise_too:
        raise RuntimeError("bad \x00 and \udfff inside")
    return "done"


@pytest.mark.django_db
def test_a_log_line_that_cannot_be_stored_is_stored_escaped_and_the_run_completes():
    handle = logs_and_raises.enqueue(False)
    assert run_until_idle() == 1
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.output, run.recoveries, run.errors) == ("completed", "done", 0, [])
    messages = list(RunLog.objects.filter(run_id=handle.id).values_list("message", flat=True))
    assert messages == ["odd: \\ud800|\\x00"]


@pytest.mark.django_db
def test_an_error_message_that_cannot_be_stored_fails_the_run_once_with_the_cause_kept():
    handle = logs_and_raises.enqueue(True)
    assert run_until_idle() == 1
    run = Run.objects.get(pk=handle.id)
    assert (run.status, run.recoveries) == (RunStatus.FAILED, 0)
    (error,) = run.errors
    assert error["type"] == "builtins.RuntimeError"
    assert error["message"] == "bad \\x00 and \\udfff inside"
    assert "RuntimeError: bad \\x00 and \\udfff inside" in error["traceback"]
