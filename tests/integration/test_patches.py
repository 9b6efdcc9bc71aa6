"""``ctx.patched()`` and ``ctx.deprecate_patch()``: job code changed under runs in flight.

One job, deployed three times: the old code, the code with a step added behind
``ctx.patched("fraud-check")``, then the code that always takes it
(``ctx.deprecate_patch``). Each deploy is a module-level switch the job reads.
"""

from collections import Counter

import pytest

from django_durable import RunStatus, get_run, job, send_event
from django_durable.models import Step
from django_durable.testing import run_until_idle

pytestmark = pytest.mark.django_db

DEPLOYED = {"code": "old"}
BODIES: Counter[str] = Counter()


def body(name):
    def run():
        BODIES[name] += 1
        return name

    return run


@job(name="tests.patches.order")
def order(ctx, number):
    ctx.step("reserve", body("reserve"))
    code = DEPLOYED["code"]
    if code == "patched":
        if ctx.patched("fraud-check"):
            ctx.step("check-fraud", body("check-fraud"))
    elif code == "deprecated":
        ctx.deprecate_patch("fraud-check")
        ctx.step("check-fraud", body("check-fraud"))
    elif code == "unpatched":  # the same step added without a marker
        ctx.step("check-fraud", body("check-fraud"))
    approval = ctx.wait_for_event("approved")
    ctx.step("ship", body("ship"))
    return approval


@pytest.fixture(autouse=True)
def old_code():
    DEPLOYED["code"] = "old"
    BODIES.clear()
    yield
    DEPLOYED["code"] = "old"


def deploy(code):
    DEPLOYED["code"] = code


def journal(run_id):
    return list(Step.objects.filter(run_id=run_id).order_by("position").values_list("kind", "name"))


def approve(handle):
    send_event(handle.id, "approved", {"by": "ops"})
    run_until_idle()
    return get_run(handle.id)


def test_a_run_journaled_before_the_patch_keeps_the_old_path_and_a_new_run_takes_the_new():
    old = order.enqueue(number=1)
    run_until_idle()
    assert get_run(old.id).status == RunStatus.WAITING
    deploy("patched")

    new = order.enqueue(number=2)
    run_until_idle()
    assert journal(new.id) == [
        ("step", "reserve"),
        ("patch", "fraud-check"),
        ("step", "check-fraud"),
        ("event", "approved"),
    ]
    assert BODIES["check-fraud"] == 1

    finished = approve(old)
    assert finished.status == RunStatus.COMPLETED, finished.errors
    assert finished.output == {"by": "ops"}
    assert journal(old.id) == [("step", "reserve"), ("event", "approved"), ("step", "ship")]
    assert BODIES["check-fraud"] == 1  # the old run did not take the new step
    assert approve(new).status == RunStatus.COMPLETED
    assert BODIES == {"reserve": 2, "check-fraud": 1, "ship": 2}


def test_after_deprecate_patch_runs_with_and_without_the_marker_replay():
    deploy("patched")
    marked = order.enqueue(number=1)
    run_until_idle()
    deploy("deprecated")
    fresh = order.enqueue(number=2)
    run_until_idle()
    # A run started after the deprecation journals no marker.
    assert ("patch", "fraud-check") not in journal(fresh.id)
    assert ("step", "check-fraud") in journal(fresh.id)

    for handle in (marked, fresh):
        finished = approve(handle)
        assert finished.status == RunStatus.COMPLETED, finished.errors
    # Replays ran no body twice: each run reserved, checked and shipped once.
    assert BODIES == {"reserve": 2, "check-fraud": 2, "ship": 2}
    assert ("patch", "fraud-check") in journal(marked.id)


def test_the_same_change_without_a_marker_fails_the_old_run_with_what_to_do():
    old = order.enqueue(number=1)
    run_until_idle()
    deploy("unpatched")
    failed = approve(old)
    assert failed.status == RunStatus.FAILED
    (error,) = failed.errors
    assert error["type"] == "django_durable.exceptions.NonDeterminismError"
    message = error["message"]
    assert "journal position 1 holds event 'approved'" in message
    assert "now asks for step 'check-fraud'" in message
    assert "ctx.patched(" in message and "fork_run()" in message
    assert "docs/guides/upgrading.md" in message


def test_a_patch_marker_is_not_announced_as_a_step():
    from django_durable import signals

    seen = []

    def receiver(sender, run, step, **kwargs):
        seen.append(step.name)

    signals.step_completed.connect(receiver, weak=False, dispatch_uid="patches")
    try:
        deploy("patched")
        order.enqueue(number=1)
        run_until_idle()
    finally:
        signals.step_completed.disconnect(dispatch_uid="patches")
    assert seen == ["reserve", "check-fraud"]


def test_patch_calls_are_refused_inside_a_step_and_with_a_bad_name():
    @job(name="tests.patches.misplaced")
    def misplaced(ctx):
        return ctx.step("outer", lambda: ctx.patched("inner"))

    @job(name="tests.patches.unnamed")
    def unnamed(ctx):
        return ctx.patched("")

    inside = misplaced.enqueue()
    empty = unnamed.enqueue()
    run_until_idle()
    assert (
        "ctx.patched('inner') was called inside the function of step 'outer'"
        in (get_run(inside.id).errors[0]["message"])
    )
    assert get_run(empty.id).status == RunStatus.FAILED
    assert "ctx.patched()" in get_run(empty.id).errors[0]["message"]


def test_the_admin_journal_shows_the_marker(admin_client):
    from django.urls import reverse

    deploy("patched")
    handle = order.enqueue(number=1)
    run_until_idle()
    page = admin_client.get(reverse("admin:django_durable_run_change", args=[handle.id]))
    assert page.status_code == 200
    assert "Patch marker" in page.content.decode()
    assert "fraud-check" in page.content.decode()
