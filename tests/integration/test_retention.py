"""Retention: whole finished families past their retention are pruned, nothing else."""

import io
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_durable import ChildRunMissing, RunStatus, job
from django_durable.checks import check_settings
from django_durable.models import ConcurrencySlot, Run, RunEvent, RunLog, ScheduleTick, Step
from django_durable.testing import run_until_idle
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def age(run_ids, days):
    """Pretend these runs finished ``days`` ago."""
    Run.objects.filter(pk__in=run_ids).update(finished_at=timezone.now() - timedelta(days=days))


def family(root_id):
    return [root_id, *Run.objects.filter(parent_id=root_id).values_list("pk", flat=True)]


def counts(line):
    """ "Deleted 3 runs (...)" without its verb and its duration."""
    return line.split(" in ")[0].removeprefix("Would delete ").removeprefix("Deleted ")


def prune(*args):
    out = io.StringIO()
    call_command("prune_runs", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_finished_families_past_retention_go_with_every_row():
    old = jobs.fan_out.enqueue([2, 3])
    recent = jobs.fan_out.enqueue([4])
    run_until_idle()
    jobs.approval.enqueue()  # a waiting run is never pruned, whatever its age
    run_until_idle()
    old_family = family(old.id)
    age(old_family, 8)
    age(family(recent.id), 6)  # completed runs are kept 7 days by default
    steps = Step.objects.filter(run_id__in=old_family).count()
    assert steps > 0
    line = prune()
    assert line.startswith(f"Deleted 3 runs ({steps} journal entries,")
    assert not Run.objects.filter(pk__in=old_family).exists()
    assert not Step.objects.filter(run_id__in=old_family).exists()
    assert Run.objects.filter(pk__in=family(recent.id)).count() == 2
    assert Run.objects.filter(status=RunStatus.WAITING).count() == 1


def test_a_finished_child_of_an_unfinished_parent_is_kept_and_read_later():
    parent = jobs.fan_out.enqueue([2, 3])
    run_until_idle(max_runs=2)  # the parent parks, one child completes
    children = list(Run.objects.filter(parent_id=parent.id))
    done = [child.pk for child in children if child.status == RunStatus.COMPLETED]
    assert len(done) == 1
    age(done, 60)
    assert prune("--older-than", "1d").startswith("Deleted 0 runs")
    assert Run.objects.filter(pk__in=done).exists()
    run_until_idle()
    parent.refresh()
    assert parent.status == RunStatus.COMPLETED and parent.output == 13


def test_a_child_deleted_by_hand_is_a_named_error_in_the_parent():
    parent = jobs.fan_out.enqueue([2, 3])
    run_until_idle(max_runs=2)
    Run.objects.filter(parent_id=parent.id, status=RunStatus.COMPLETED).delete()
    run_until_idle()
    parent.refresh()
    assert parent.status == RunStatus.FAILED
    assert parent.error["type"].endswith("ChildRunMissing")
    assert "no longer exist" in parent.error["message"]
    assert issubclass(ChildRunMissing, LookupError)


def test_the_idempotency_key_of_a_pruned_run_is_free_again():
    first = jobs.echo.using(idempotency_key="order-7").enqueue()
    run_until_idle()
    age([first.id], 8)
    prune()
    again = jobs.echo.using(idempotency_key="order-7").enqueue()
    assert again.created and again.id != first.id


def test_per_job_and_per_status_retention():
    short = jobs.short_lived.enqueue()
    plain = jobs.echo.enqueue()
    kept = jobs.kept_when_failed.enqueue()
    failed = jobs.echo.enqueue()
    run_until_idle()
    Run.objects.filter(pk__in=[kept.id, failed.id]).update(status=RunStatus.FAILED)
    age([short.id, plain.id], 2)
    age([kept.id, failed.id], 400)
    assert prune().startswith("Deleted 2 runs")
    left = set(Run.objects.values_list("pk", flat=True))
    assert left == {plain.id, kept.id}  # 1 day for short_lived; failed kept for ever


def test_status_and_job_filters_and_a_dry_run_that_counts_what_then_goes():
    runs = [jobs.echo.enqueue(), jobs.echo.enqueue(), jobs.two_steps.enqueue()]
    run_until_idle()
    age([run.id for run in runs], 100)
    Run.objects.filter(pk=runs[1].id).update(status=RunStatus.CANCELLED)
    assert prune("--status", "cancelled", "--dry-run").startswith("Would delete 1 runs")
    assert Run.objects.count() == 3
    dry = prune("--job", "tests.two_steps", "--dry-run")
    real = prune("--job", "tests.two_steps")
    assert dry.startswith("Would delete 1 runs (2 journal entries")
    assert counts(dry) == counts(real)
    assert set(Run.objects.values_list("pk", flat=True)) == {runs[0].id, runs[1].id}


def test_batches_of_one_walk_every_status_past_kept_families_and_ties():
    runs = [jobs.echo.enqueue() for _ in range(7)]
    parent = jobs.fan_out.enqueue([2, 3])
    run_until_idle(max_runs=len(runs) + 2)  # the parent parks, one child completes
    child = Run.objects.get(parent_id=parent.id, status=RunStatus.COMPLETED)
    statuses = [RunStatus.COMPLETED] * 3 + [RunStatus.FAILED] * 2 + [RunStatus.CANCELLED] * 2
    for run, status in zip(runs, statuses, strict=True):
        Run.objects.filter(pk=run.id).update(status=status)
    # All at one instant: the walk's tie-break on id is what moves it on.
    Run.objects.filter(pk__in=[run.id for run in runs] + [child.pk]).update(
        finished_at=timezone.now() - timedelta(days=3)
    )
    assert prune("--older-than", "1d", "--batch-size", "1").startswith("Deleted 7 runs")
    assert set(Run.objects.values_list("pk", flat=True)) == {parent.id, *family(parent.id)}
    run_until_idle()
    parent.refresh()
    assert parent.output == 13


def test_a_pause_between_batches():
    ids = [jobs.echo.enqueue(i).id for i in range(3)]
    run_until_idle()
    age(ids, 8)
    started = time.monotonic()
    line = prune("--batch-size", "1", "--status", "completed", "--pause", "0.3")
    # Three batches of one family, then a fourth that finds nothing: three pauses.
    assert time.monotonic() - started >= 0.9
    assert line.startswith("Deleted 3 runs")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--older-than", "soon"), "--older-than: 'soon' is not an age"),
        (("--status", "pending"), "--status takes finished statuses"),
        (("--batch-size", "0"), "--batch-size must be 1 or more"),
        (("--pause", "-1"), "--pause must be 0 or more seconds"),
        (("--pause", "nan"), "--pause must be 0 or more seconds"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, message):
    with pytest.raises(CommandError, match=message) as caught:
        prune(*args)
    assert caught.value.returncode == 2


def test_retention_is_checked_where_it_is_written():
    with pytest.raises(TypeError, match="retention must be a timedelta"):
        job(name="tests.bad_retention", retention="7d")(lambda ctx: None)
    with pytest.raises(ValueError, match="unknown statuses done"):
        job(name="tests.bad_retention", retention={"done": 1})(lambda ctx: None)
    for bad in ("7d", {"completed": -1}, {"running": 3}):
        with override_settings(DURABLE={"RETENTION": bad}):
            ids = [message.id for message in check_settings()]
        assert "django_durable.E010" in ids, bad
    with override_settings(DURABLE={"RETENTION": None}):
        assert "django_durable.E010" not in [m.id for m in check_settings()]


def old_families(count, *, children=2, steps=3):
    """``count`` completed families, finished 10 days ago, with journals, logs and events."""
    finished = timezone.now() - timedelta(days=10)
    done = {"status": RunStatus.COMPLETED, "started_at": finished, "finished_at": finished}
    roots = Run.objects.bulk_create(Run(job_name="tests.echo", **done) for _ in range(count))
    kids = Run.objects.bulk_create(
        Run(job_name="tests.echo", parent=root, **done) for root in roots for _ in range(children)
    )
    every = roots + kids
    Step.objects.bulk_create(
        Step(run=run, position=i, name=f"s{i}", status="completed")
        for run in every
        for i in range(steps)
    )
    RunLog.objects.bulk_create(RunLog(run=run, level=20, message="hello") for run in every)
    RunEvent.objects.bulk_create(RunEvent(run=run, name="e") for run in roots)
    return len(every)


def orphans():
    runs = Run.objects.values("pk")
    return {
        "steps": Step.objects.exclude(run_id__in=runs).count(),
        "logs": RunLog.objects.exclude(run_id__in=runs).count(),
        "events": RunEvent.objects.exclude(run_id__in=runs).count(),
        "slots": ConcurrencySlot.objects.exclude(run_id__in=runs).count(),
        "ticks": ScheduleTick.objects.exclude(run_id=None).exclude(run_id__in=runs).count(),
        "children": Run.objects.exclude(parent_id=None).exclude(parent_id__in=runs).count(),
    }


def test_the_overview_shows_the_policy_the_tables_and_the_last_pass(client, django_user_model):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    from django_durable.models import Worker
    from django_durable.storage.workers import worker_pruned

    user = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_run"))
    client.force_login(user)
    jobs.echo.enqueue()
    run_until_idle()
    url = reverse("admin:django_durable_runoverview_changelist")
    with override_settings(DURABLE={**settings_durable(), "RETENTION": {"failed": None}}):
        page = client.get(url).content.decode()
    flat = page.replace("\n", "").replace("  ", "")
    assert page.count("<h2>Retention</h2>") == 1
    assert page.index('<div id="content-main">') < page.index("<h2>Retention</h2>")
    assert "<td>7.0 days</td><td>for ever</td><td>30.0 days</td>" in flat
    assert "<td>tests.short_lived</td><td>24.0 h</td><td>24.0 h</td><td>24.0 h</td>" in flat
    assert "No registered worker has finished a pruning pass yet" in page
    tables = {row["label"]: row for row in client.get(url).context["retention"]["tables"]}
    assert set(tables) == {"runs", "journal entries", "log lines", "events"}
    if connection.vendor == "sqlite":  # counted; the servers' figures are estimates
        assert tables["runs"]["rows"] == 1 and not tables["runs"]["estimated"]
    now = timezone.now()
    Worker.objects.create(
        worker_id="w-1", hostname="h", pid=1, concurrency=1, started_at=now, last_seen_at=now
    )
    worker_pruned("default", "w-1")
    assert "by <code>w-1</code>" in client.get(url).content.decode()


def settings_durable():
    from django.conf import settings

    return dict(settings.DURABLE)
