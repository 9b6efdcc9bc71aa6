"""``manage.py durable fork``: the admin's rules, --json, exit codes, and a real process."""

import io
import json
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.testing import run_until_idle
from tests.testapp import fork_jobs
from tests.testapp.jobs import executions
from tests.workers import ROOT, process_env

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def bug_not_fixed():
    fork_jobs.FIXED["on"] = False
    yield
    fork_jobs.FIXED["on"] = False


def durable(*args):
    out = io.StringIO()
    call_command("durable", *args, stdout=out)
    return out.getvalue()


def refused(*args, returncode):
    with pytest.raises(CommandError) as caught:
        durable(*args)
    assert caught.value.returncode == returncode
    return str(caught.value)


def failed_run():
    handle = fork_jobs.fork_three_steps.enqueue(n=4)
    run_until_idle()
    assert Run.objects.get(pk=handle.id).status == RunStatus.FAILED
    return handle


def test_fork_from_failure_with_json():
    old = failed_run()
    fork_jobs.FIXED["on"] = True
    (result,) = json.loads(durable("fork", str(old.id), "--json"))
    fork = Run.objects.get(forked_from=old.id)
    assert result == {
        "id": str(old.id),
        "ok": True,
        "fork": str(fork.pk),
        "from_step": 2,
        "message": f"forked {old.id} from position 2: the fork is run {fork.pk}",
    }
    run_until_idle()
    fork.refresh_from_db()
    assert fork.status == RunStatus.COMPLETED and fork.output == [4, 8, "three fixed"]
    assert executions(fork.pk, "one") == 0


def test_from_step_by_position_or_name_and_new_arguments():
    old = failed_run()
    fork_jobs.FIXED["on"] = True
    text = durable("fork", str(old.id), "--from-step", "0", "--kwargs", '{"n": 6}')
    assert text.startswith(f"forked {old.id} from position 0")
    durable("fork", str(old.id), "--from-step", "two", "--args", "[7]", "--kwargs", "{}")
    run_until_idle()
    outputs = sorted(run.output for run in Run.objects.filter(forked_from=old.id))
    # Step one's result is kept from the old run (n=4); steps two and three see n=7.
    assert outputs == [[4, 14, "three fixed"], [6, 12, "three fixed"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-step", "3x"], "no operation named '3x'"),
        (["--from-step", "9"], "out of range"),
        (["--from-step", "-1"], "out of range"),
        (["--args", "{"], "--args is not valid JSON"),
        (["--args", '{"n": 1}'], "--args must be a JSON list"),
        (["--kwargs", "[1]"], "--kwargs must be a JSON object"),
        (["--kwargs", '{"bogus": 1}'], "bogus"),
    ],
)
def test_bad_input_exits_2_and_forks_nothing(args, message):
    old = failed_run()
    assert message in refused("fork", str(old.id), *args, returncode=2)
    assert not Run.objects.filter(forked_from=old.id).exists()


def test_refused_runs_exit_1():
    assert "not-a-uuid" in refused("fork", "not-a-uuid", returncode=2)
    missing = "01234567-89ab-cdef-0123-456789abcdef"
    assert "no such run" in refused("fork", missing, returncode=1)
    waiting = fork_jobs.fork_events.enqueue()
    run_until_idle()
    assert "it is waiting, not finished" in refused("fork", str(waiting.id), returncode=1)
    gone = Run.objects.create(job_name="tests.removed_job", status=RunStatus.FAILED)
    assert "tests.removed_job" in refused("fork", str(gone.pk), returncode=1)
    assert not Run.objects.filter(forked_from__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_the_command_in_its_own_process():
    old = failed_run()
    command = [sys.executable, "-m", "django", "durable", "fork", str(old.id), "--from-step"]
    bad = subprocess.run([*command, "7"], cwd=ROOT, env=process_env(), capture_output=True)
    assert bad.returncode == 2 and b"out of range" in bad.stderr
    done = subprocess.run([*command, "one"], cwd=ROOT, env=process_env(), capture_output=True)
    assert done.returncode == 0, done.stderr
    fork = Run.objects.get(forked_from=old.id)
    assert f"the fork is run {fork.pk}" in done.stdout.decode()
