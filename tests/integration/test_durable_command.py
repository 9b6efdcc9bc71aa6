"""``manage.py durable``: every subcommand, its --json output parsed back, its exit codes."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_durable import RunStatus
from django_durable.models import Run, RunEvent
from django_durable.testing import run_until_idle
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def durable(*args):
    out = io.StringIO()
    call_command("durable", *args, stdout=out)
    return out.getvalue()


def durable_json(*args):
    return json.loads(durable(*args, "--json"))


def refused(*args, returncode=1):
    with pytest.raises(CommandError) as caught:
        durable(*args)
    assert caught.value.returncode == returncode
    return str(caught.value)


def test_list_filters_by_status_job_queue_and_age():
    done = jobs.echo.enqueue(1)
    run_until_idle()
    waiting = jobs.approval.enqueue()
    other = jobs.echo.using(queue_name="other").enqueue(2)
    run_until_idle(queues=["default"])
    every = durable_json("list")
    assert [row["id"] for row in every] == [str(other.id), str(waiting.id), str(done.id)]
    assert {row["id"] for row in durable_json("list", "--status", "completed,waiting")} == {
        str(done.id),
        str(waiting.id),
    }
    assert [row["id"] for row in durable_json("list", "--job", "tests.approval")] == [
        str(waiting.id)
    ]
    assert [row["id"] for row in durable_json("list", "--queue", "other")] == [str(other.id)]
    assert len(durable_json("list", "--limit", "1")) == 1
    Run.objects.filter(pk=done.id).update(created_at=done.created_at.replace(year=2000))
    assert str(done.id) not in {row["id"] for row in durable_json("list", "--since", "1d")}
    table = durable("list", "--status", "waiting")
    assert table.splitlines()[0].split() == [
        "id", "job_name", "status", "queue_name", "attempt", "created_at", "finished_at"
    ]  # fmt: skip
    assert str(waiting.id) in table and "tests.echo" not in table
    assert durable("list", "--job", "nothing.here").strip() == "(none)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--status", "done"), "unknown status done: choose from pending"),
        (("--since", "yesterday"), "--since: 'yesterday' is not an age"),
        (("--limit", "0"), "--limit must be 1 or more"),
    ],
)
def test_list_refuses_bad_arguments_with_exit_code_2(args, message):
    assert message in refused("list", *args, returncode=2)


def test_show_prints_the_journal_errors_logs_and_children():
    parent = jobs.fan_out.enqueue([2, 3])
    run_until_idle()
    parent.refresh()
    error = {"attempt": 1, "type": "RuntimeError", "message": "boom", "traceback": "Trace: boom"}
    Run.objects.filter(pk=parent.id).update(errors=[error])
    shown = durable_json("show", str(parent.id))
    assert shown["status"] == RunStatus.COMPLETED and shown["output"] == parent.output == 13
    assert "started" in [step["name"] for step in shown["journal"]]
    assert all(step["status"] == "completed" for step in shown["journal"])
    assert sorted(child["status"] for child in shown["children"]) == ["completed", "completed"]
    assert shown["errors"] == [error]
    assert "lease_token" not in shown and "lease_owner" not in shown
    text = durable("show", str(parent.id))
    assert f"id: {parent.id}" in text
    assert "error in attempt 1:\nTrace: boom" in text
    assert text.index("journal:") < text.index("logs:") < text.index("children:")


def test_show_of_an_unknown_or_malformed_id():
    assert "no run with id" in refused("show", "0190a1b2-0000-7000-8000-000000000000")
    assert "is not a run id" in refused("show", "nope", returncode=2)


def test_retry_cancel_and_restart_follow_the_admins_rules():
    pending = jobs.echo.enqueue()
    completed = jobs.echo.enqueue()
    run_until_idle(max_runs=1)  # the first in claim order completes
    assert Run.objects.get(pk=pending.id).status == RunStatus.COMPLETED
    pending, completed = completed, pending
    # Retry is for failed or cancelled runs: the admin's words say why not.
    message = refused("retry", str(completed.id))
    assert "not done" in message
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("durable", "retry", str(completed.id), stdout=out)
    assert f"skipped {completed.id}: it is completed, not failed or cancelled" in out.getvalue()
    assert durable("cancel", str(pending.id)).strip() == f"cancelled {pending.id}"
    assert Run.objects.get(pk=pending.id).status == RunStatus.CANCELLED
    [result] = durable_json("retry", str(pending.id))
    assert result == {"id": str(pending.id), "ok": True, "message": f"retried {pending.id}"}
    assert Run.objects.get(pk=pending.id).status == RunStatus.PENDING
    assert durable("restart", str(completed.id)).strip() == f"restarted {completed.id}"
    assert Run.objects.get(pk=completed.id).status == RunStatus.PENDING


def test_one_refused_run_among_several_exits_1_after_doing_the_others():
    first, second = jobs.echo.enqueue(), jobs.echo.enqueue()
    Run.objects.filter(pk=second.id).update(status=RunStatus.COMPLETED)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 runs not done") as caught:
        call_command("durable", "cancel", str(first.id), str(second.id), stdout=out)
    assert caught.value.returncode == 1
    assert Run.objects.get(pk=first.id).status == RunStatus.CANCELLED
    assert "it is completed, not unfinished" in out.getvalue()


def test_a_malformed_id_among_several_acts_on_none():
    run = jobs.echo.enqueue()
    refused("cancel", str(run.id), "nope", returncode=2)
    assert Run.objects.get(pk=run.id).status == RunStatus.PENDING


def test_send_event_delivers_json_and_refuses_bad_input_before_storing():
    run = jobs.approval.enqueue()
    run_until_idle()
    [result] = durable_json("send-event", str(run.id), "approval", '{"ok": true}')
    assert result["ok"] and result["message"] == f"sent 'approval' to {run.id}"
    assert RunEvent.objects.get(run_id=run.id).payload == {"ok": True}
    assert "not valid JSON" in refused("send-event", str(run.id), "approval", "{", returncode=2)
    assert "event name" in refused("send-event", str(run.id), "x" * 300, returncode=2)
    assert "nan" in refused("send-event", str(run.id), "approval", "NaN", returncode=2).lower()
    assert RunEvent.objects.filter(run_id=run.id).count() == 1
    run_until_idle()
    assert Run.objects.get(pk=run.id).status == RunStatus.COMPLETED
    assert "it is completed, not unfinished" in refused("send-event", str(run.id), "approval")


def test_prune_is_prune_runs_with_json():
    from datetime import timedelta

    from django.utils import timezone

    old, recent = jobs.two_steps.enqueue(), jobs.two_steps.enqueue()
    run_until_idle()
    Run.objects.filter(pk=old.id).update(finished_at=timezone.now() - timedelta(days=3))
    assert durable_json("prune", "--older-than", "1d", "--dry-run")["runs"] == 1
    pruned = durable_json("prune", "--older-than", "1d")
    assert {key: pruned[key] for key in ("runs", "steps", "events")} == {
        "runs": 1,
        "steps": 2,
        "events": 0,
    }
    assert list(Run.objects.values_list("pk", flat=True)) == [recent.id]
    assert durable("prune", "--older-than", "1d").startswith("Deleted 0 runs")
    assert "--status takes finished statuses" in refused(
        "prune", "--status", "running", returncode=2
    )
    assert "--older-than" in refused("prune", "--older-than", "soon", returncode=2)
