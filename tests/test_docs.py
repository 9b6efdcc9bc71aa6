"""Every code sample in the docs is a file under docs/snippets/, and every one runs here.

Pages include the samples with pymdownx.snippets (``--8<-- "file.py"``). The samples'
jobs run through ``run_until_idle()`` against the suite's real database; their model is
registered in the test app so the test database has its table.
"""

import re
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client, TestCase, override_settings
from django.utils import timezone

from django_durable import (
    ChildRunFailed,
    RunStatus,
    StepFailed,
    get_run,
    send_event,
)
from django_durable.checks import check_settings
from django_durable.models import Run, Step
from django_durable.testing import run_until_idle
from docs.snippets import (
    check_cancelled,
    children,
    events,
    jobs,
    mailer,
    models,
    operations,
    payments,
    retries,
    sleep,
    timeouts,
    upgrading,
)

# Collected by pytest like the suite's own tests: the docs' test samples must pass.
from docs.snippets.tests_pytest import test_every_warehouse_packs_a_parcel  # noqa: F401
from docs.snippets.tests_quickstart import FulfilOrderTests  # noqa: F401
from docs.snippets.tests_waiting import RefundTests  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
# docs/admin.md keeps its one sample inline; tests/test_admin.py executes it.
INLINE_ALLOWED = {"admin.md"}
# Stand-ins for outside services that the samples import; no page shows them.
STAND_INS = {"payments.py", "mailer.py", "logistics.py"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
INCLUDE = re.compile(r'^--8<-- "([^"]+)"$')


def pages():
    return sorted(DOCS.rglob("*.md"))


def exec_settings(name):
    namespace = {"BASE_DIR": Path("/srv/shop")}
    exec((SNIPPETS / name).read_text(), namespace)
    return namespace


def durable_messages(**settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding setting DATABASES ..."
        with override_settings(**settings):
            return {message.id for message in check_settings()}


def test_pages_have_no_inline_python():
    offenders = []
    for page in pages():
        if page.relative_to(DOCS).as_posix() in INLINE_ALLOWED:
            continue
        for language, body in FENCE.findall(page.read_text()):
            if language not in ("python", "py", "pycon"):
                continue
            lines = [line for line in body.splitlines() if line.strip()]
            if not lines or not all(INCLUDE.match(line) for line in lines):
                offenders.append(page.relative_to(DOCS).as_posix())
    assert offenders == []


def test_every_sample_is_shown_and_every_include_exists():
    included = set()
    for page in pages():
        for name in re.findall(r'--8<-- "([^":]+)', page.read_text()):
            assert (SNIPPETS / name).is_file(), f"{page.name} includes missing {name}"
            included.add(name)
    samples = {path.name for path in SNIPPETS.glob("*.py")}
    assert samples - STAND_INS - included == set()


def test_settings_samples_pass_the_system_checks():
    app = exec_settings("settings_app.py")
    assert "django_durable" in app["INSTALLED_APPS"]
    assert durable_messages(DURABLE=app["DURABLE"]) == set()

    sqlite = exec_settings("settings_sqlite.py")["DATABASES"]
    assert durable_messages(DATABASES=sqlite) == set()
    assert {"django_durable.W001", "django_durable.W002", "django_durable.W003"} <= (
        durable_messages(DATABASES={"default": {**sqlite["default"], "OPTIONS": {}}})
    )

    mysql = exec_settings("settings_mysql.py")["DATABASES"]
    assert durable_messages(DATABASES=mysql) == set()

    pgbouncer = exec_settings("settings_pgbouncer.py")
    assert durable_messages(DATABASES=pgbouncer["DATABASES"], DURABLE=pgbouncer["DURABLE"]) == set()


@override_settings(ROOT_URLCONF="docs.snippets.urls")
class ViewSampleTests(TestCase):
    def test_place_order_then_read_the_run(self):
        response = Client().post("/orders/", {"email": "ada@example.com", "amount_cents": "900"})
        self.assertEqual(response.status_code, 202)
        run_id = response.json()["run"]
        self.assertEqual(Client().get(f"/runs/{run_id}/").json()["status"], "pending")

        run_until_idle()

        body = Client().get(f"/runs/{run_id}/").json()
        self.assertEqual(
            body, {"status": "completed", "output": {"charge_id": body["output"]["charge_id"]}}
        )
        order = models.Order.objects.get(pk=response.json()["order"])
        self.assertEqual(order.status, "reserved")

    def test_decide_refund_wakes_the_run(self):
        run = events.refund.enqueue(order_id=3, amount_cents=500)
        run_until_idle()
        response = Client().post(f"/refunds/{run.id}/decision/", {"approved": "no"})
        self.assertEqual(response.status_code, 204)
        run_until_idle()
        self.assertEqual(get_run(run.id).output, "refused")
        # The run has finished: a second decision is refused.
        response = Client().post(f"/refunds/{run.id}/decision/", {"approved": "yes"})
        self.assertEqual(response.status_code, 409)
        missing = "00000000-0000-7000-8000-000000000000"
        self.assertEqual(Client().post(f"/refunds/{missing}/decision/").status_code, 404)


@pytest.mark.django_db
def test_quickstart_job_charges_once_with_an_idempotency_key():
    order = models.Order.objects.create(customer_email="grace@example.com", amount_cents=1500)
    job = jobs.fulfil_order.using(idempotency_key=f"fulfil-order-{order.pk}")
    charged_before = payments.charges[f"order-{order.pk}"]
    first = job.enqueue(order_id=order.pk)
    again = job.enqueue(order_id=order.pk)
    assert (first.created, again.created, again.id) == (True, False, first.id)
    run_until_idle()
    first.refresh()
    assert first.status == RunStatus.COMPLETED
    assert first.progress["done"] == 2
    assert payments.charges[f"order-{order.pk}"] == charged_before + 1


@pytest.mark.django_db
def test_sleep_samples_park_until_their_wake_time():
    run = sleep.follow_up.enqueue(order_id=11)
    soon = sleep.launch_reminder.enqueue(order_id=12)
    run_until_idle()
    wake_at = Run.objects.get(pk=run.id).wake_at
    assert get_run(run.id).status == RunStatus.WAITING
    assert timedelta(days=2, hours=23) < wake_at - timezone.now() <= timedelta(days=3)
    assert "thanks 11" in mailer.sent and "review 11" not in mailer.sent
    launch = Run.objects.get(pk=soon.id)
    assert (launch.status, launch.wake_at.year, launch.wake_at.month) == ("waiting", 2031, 3)


@pytest.mark.django_db
def test_refund_times_out_without_a_decision():
    run = events.refund.enqueue(order_id=4, amount_cents=100)
    run_until_idle()
    # Two days pass: move the journaled deadline and the wake time into the past.
    past = timezone.now() - timedelta(seconds=1)
    Run.objects.filter(pk=run.id).update(wake_at=past)
    step = Step.objects.get(run_id=run.id, name="decision")
    if isinstance(step.result, dict) and "deadline" in step.result:
        Step.objects.filter(pk=step.pk).update(result={**step.result, "deadline": past.isoformat()})
    run_until_idle()
    assert get_run(run.id).output == "expired"


@pytest.mark.django_db
def test_children_fail_together_and_name_the_failed_one():
    run = children.ship_order.enqueue(order_id=6, warehouses=["north", "closed"])
    run_until_idle()
    run.refresh()
    assert run.status == RunStatus.FAILED
    assert run.error["type"].endswith(ChildRunFailed.__name__)
    failed_child = Run.objects.get(parent_id=run.id, status="failed")
    assert failed_child.kwargs == {"order_id": 6, "warehouse": "closed"}


@pytest.mark.django_db
def test_cancel_retry_and_restart_samples():
    run = events.refund.enqueue(order_id=8, amount_cents=100)
    run_until_idle()
    assert operations.cancel(run.id).status == RunStatus.CANCELLED
    assert operations.resume(run.id).status == RunStatus.PENDING
    run_until_idle()
    send_event(run.id, "decision", {"approved": True})
    run_until_idle()
    assert get_run(run.id).output == "re_8_100"
    restarted = operations.start_over(run.id)
    assert (restarted.status, restarted.attempt) == (RunStatus.PENDING, 3)


@pytest.mark.django_db
def test_check_cancelled_sample_imports_rows():
    rows = [{"customer_email": f"c{n}@example.com", "amount_cents": n} for n in range(1, 1202)]
    run = check_cancelled.import_orders.enqueue(rows=rows)
    run_until_idle()
    assert get_run(run.id).output == 1201
    assert models.Order.objects.count() == 1201


@pytest.mark.django_db
def test_timeout_sample_sets_a_deadline():
    models.Order.objects.create(customer_email="a@example.com", amount_cents=1)
    run = timeouts.nightly_report.enqueue()
    run_until_idle()
    row = Run.objects.get(pk=run.id)
    assert (row.status, row.output) == ("completed", 1)
    # The deadline comes from the database clock at the first claim, plus the timeout.
    assert abs(row.deadline - row.started_at - timedelta(hours=1)) < timedelta(seconds=5)


@pytest.mark.django_db
def test_retry_sample_retries_the_step_on_connection_errors(monkeypatch):
    calls = []

    def flaky(amount_cents, *, idempotency_key):
        calls.append(idempotency_key)
        if len(calls) < 3:
            raise ConnectionError("provider timed out")
        return "ch_ok"

    monkeypatch.setattr(payments, "charge", flaky)
    monkeypatch.setattr(retries, "CHARGE_RETRY", retries.CHARGE_RETRY)
    run = retries.charge.enqueue(order_id=9, amount_cents=100)
    run_until_idle()
    assert (get_run(run.id).output, len(calls)) == ("ch_ok", 3)
    assert Step.objects.get(run_id=run.id, name="charge-card").attempts == 3
    assert retries.RUN_RETRY.max_attempts == 3
    assert issubclass(StepFailed, Exception)


@pytest.mark.django_db
def test_upgraded_job_runs_next_to_the_old_version():
    old = upgrading.welcome.enqueue(order_id=21)
    new = upgrading.welcome_v2.enqueue(order_id=22)
    run_until_idle()
    assert get_run(old.id).status == get_run(new.id).status == RunStatus.COMPLETED
    assert list(Step.objects.filter(run_id=new.id).values_list("name", flat=True)) == [
        "send-thanks",
        "ask-for-review",
    ]


def test_settings_reference_lists_every_setting_and_check():
    from django_durable.conf import DEFAULTS

    page = (DOCS / "reference" / "settings.md").read_text()
    assert [key for key in DEFAULTS if f"| `{key}` |" not in page] == []
    source = "\n".join(p.read_text() for p in (ROOT / "django_durable").rglob("*.py"))
    check_ids = set(re.findall(r"django_durable\.[EWI]\d{3}", source))
    assert check_ids and {i for i in check_ids if f"`{i}`" not in page} == set()


def test_runworker_reference_lists_every_option():
    from django_durable.management.commands.runworker import Command

    parser = Command().create_parser("manage.py", "runworker")
    ours = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest not in DJANGO_COMMON_OPTIONS
    }
    page = (DOCS / "reference" / "runworker.md").read_text()
    assert ours and {option for option in ours if f"`{option}" not in page} == set()


# Options every Django command has; runworker's own are documented on its page.
DJANGO_COMMON_OPTIONS = {
    "help",
    "version",
    "verbosity",
    "settings",
    "pythonpath",
    "traceback",
    "no_color",
    "force_color",
    "skip_checks",
}
