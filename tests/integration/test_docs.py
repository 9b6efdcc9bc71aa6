"""Every code sample in the docs is a file under docs/snippets/, and every one runs here.

Pages show each sample as a plain Markdown block under a ``<!-- snippet: path -->`` line
(tests/doc_blocks.py); the tests below check that each block equals its file, and run the
files. Each page's samples form a package named like the shop app's modules they show
(``docs/snippets/events/jobs.py`` is the ``# shop/jobs.py`` of the events guide), so their
relative imports work as they would in the reader's project. The samples' jobs run through
``run_until_idle()`` against the suite's real database (those of "Testing without a
database" on ``InMemoryStorage``); their model is registered in the test app so the test
database has its table.
"""

import ast
import functools
import io
import json
import re
import tomllib
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
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
from django_durable.testing.time_travel import time_travel
from docs.snippets.async_jobs import jobs as async_jobs
from docs.snippets.cancellation import admin_tools
from docs.snippets.cancellation import jobs as cancellation_jobs
from docs.snippets.children import jobs as children_jobs

# Collected by pytest like the suite's own tests: the docs' test samples must pass.
from docs.snippets.children.test_jobs import test_every_warehouse_packs_a_parcel  # noqa: F401
from docs.snippets.events import jobs as events_jobs
from docs.snippets.events.test_jobs import (  # noqa: F401
    storage,
    test_approved_refund_is_paid,
    test_refund_nobody_decides_expires_after_two_days,
)
from docs.snippets.events.tests import RefundTests  # noqa: F401
from docs.snippets.patches import jobs as patches_jobs
from docs.snippets.quickstart import jobs as quickstart_jobs
from docs.snippets.quickstart import models
from docs.snippets.quickstart.tests import FulfilOrderTests  # noqa: F401
from docs.snippets.retention import jobs as retention_jobs
from docs.snippets.retries import jobs as retries_jobs
from docs.snippets.sleep import jobs as sleep_jobs
from docs.snippets.sleep.test_jobs import (  # noqa: F401
    test_review_is_asked_for_three_days_after_the_thanks,
)
from docs.snippets.stand_ins import mailer, payments
from docs.snippets.timeouts import jobs as timeouts_jobs
from docs.snippets.upgrading import jobs as upgrading_jobs
from tests import doc_blocks

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SNIPPETS = DOCS / "snippets"
# Sample files no page shows, and why.
NOT_SHOWN = {
    # Stand-ins for the outside services the samples call; pages name them in prose.
    "stand_ins/payments.py",
    "stand_ins/mailer.py",
    "stand_ins/logistics.py",
    # The quickstart's model, imported again by the pages whose samples use it.
    "async_jobs/models.py",
    "cancellation/models.py",
    "timeouts/models.py",
}
LABEL = re.compile(r"^# (?P<path>[\w/]+\.py)\b")


def all_blocks():
    return [block for page in doc_blocks.pages() for block in doc_blocks.blocks(page)]


def snippet_blocks():
    return [block for block in all_blocks() if block.source is not None]


def relative_imports(source):
    """The sibling modules a sample imports: ``from . import a`` and ``from .b import c``."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                modules.add(node.module)
            else:
                modules.update(alias.name for alias in node.names)
    return modules


def exec_settings(name):
    namespace = {"BASE_DIR": Path("/srv/shop")}
    exec((SNIPPETS / name).read_text(), namespace)
    return namespace


def durable_messages(**settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding setting DATABASES ..."
        with override_settings(**settings):
            return {message.id for message in check_settings()}


def test_no_page_uses_snippet_includes():
    # A code forge shows an include line, not the code; blocks are copied in instead.
    assert [p.name for p in doc_blocks.pages() if "--8<--" in p.read_text()] == []


def test_every_python_block_names_its_file_or_why_it_has_none():
    python = [block for block in all_blocks() if block.language in doc_blocks.PYTHON]
    assert len(python) > 20
    assert [block.where for block in python if block.marker is None] == []


def test_every_snippet_block_equals_its_file():
    blocks = snippet_blocks()
    assert [block.where for block in blocks if not block.source.is_file()] == []
    stale = [block.where for block in blocks if block.body != block.expected()]
    assert stale == [], "run `python3 dev.py docs sync` to copy the files into the pages"


def test_every_sample_file_is_shown_or_listed_as_not_shown():
    shown = {block.source.relative_to(SNIPPETS).as_posix() for block in snippet_blocks()}
    samples = {
        path.relative_to(SNIPPETS).as_posix()
        for path in SNIPPETS.rglob("*.py")
        if path.name != "__init__.py"
    }
    assert NOT_SHOWN - samples == set()
    assert samples - NOT_SHOWN - shown == set()
    assert shown & NOT_SHOWN == set()


def test_a_samples_label_names_its_own_file():
    # "# shop/jobs.py" comes from a jobs.py, so the sample's relative imports mean in the
    # snippets' package what they mean in the reader's shop app.
    wrong = []
    for block in snippet_blocks():
        label = LABEL.match(block.body)
        assert label, f"{block.where}: the first line names the file, e.g. # shop/jobs.py"
        if label["path"] != "settings.py" and Path(label["path"]).name != block.source.name:
            wrong.append((block.where, label["path"], block.source.name))
    assert wrong == []


def test_samples_import_only_modules_their_page_names():
    # A sample's "from . import payments" needs shop/payments.py on the same page: as
    # another sample's label, or in its prose for a stand-in the page does not show.
    missing = []
    for page in doc_blocks.pages():
        text = page.read_text()
        for block in doc_blocks.blocks(page):
            if block.source is None:
                continue
            for module in relative_imports(block.expected()):
                if f"shop/{module}.py" not in text:
                    missing.append((block.where, module))
    assert missing == []


def test_install_lines_use_the_distribution_name():
    # "django-durable" on PyPI is another project; ours is published under this name.
    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    lines = [
        (page.name, line)
        for page in doc_blocks.pages()
        for line in re.findall(r"pip install [^\n`]*", page.read_text())
    ]
    ours = [line for _, line in lines if name in line]
    assert len(ours) >= 6
    wrong = [(page, line) for page, line in lines if re.search(r"django-durable\b(?!-runs)", line)]
    assert wrong == []


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

    retention = exec_settings("settings_retention.py")["DURABLE"]
    assert durable_messages(DURABLE=retention) == set()

    pgbouncer = exec_settings("settings_pgbouncer.py")
    assert durable_messages(DATABASES=pgbouncer["DATABASES"], DURABLE=pgbouncer["DURABLE"]) == set()


class ViewSampleTests(TestCase):
    @override_settings(ROOT_URLCONF="docs.snippets.quickstart.urls")
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

    @override_settings(ROOT_URLCONF="docs.snippets.events.urls")
    def test_decide_refund_wakes_the_run(self):
        run = events_jobs.refund.enqueue(order_id=3, amount_cents=500)
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
    job = quickstart_jobs.fulfil_order.using(idempotency_key=f"fulfil-order-{order.pk}")
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
    run = sleep_jobs.follow_up.enqueue(order_id=11)
    soon = sleep_jobs.launch_reminder.enqueue(order_id=12)
    run_until_idle()
    wake_at = Run.objects.get(pk=run.id).wake_at
    assert get_run(run.id).status == RunStatus.WAITING
    assert timedelta(days=2, hours=23) < wake_at - timezone.now() <= timedelta(days=3)
    assert "thanks 11" in mailer.sent and "review 11" not in mailer.sent
    launch = Run.objects.get(pk=soon.id)
    assert (launch.status, launch.wake_at.year, launch.wake_at.month) == ("waiting", 2031, 3)


@pytest.mark.django_db
def test_async_sample_books_once_and_marks_the_order(monkeypatch):
    import httpx

    bookings = []

    def carrier(request):
        bookings.append((request.url.path, json.loads(request.content), request.headers))
        return httpx.Response(201, json={"booking_id": "bk_7"})

    client = functools.partial(httpx.AsyncClient, transport=httpx.MockTransport(carrier))
    monkeypatch.setattr(async_jobs.httpx, "AsyncClient", client)
    order = models.Order.objects.create(customer_email="ada@example.com", amount_cents=900)
    run = async_jobs.book_delivery.enqueue(order_id=order.pk)
    with time_travel() as clock:
        run_until_idle()
        assert get_run(run.id).status == RunStatus.WAITING  # until pickup
        clock.advance(timedelta(days=1))
        run_until_idle()
    assert get_run(run.id).output == "bk_7"
    ((path, body, headers),) = bookings  # the replay after the sleep did not call again
    assert (path, body) == ("/bookings", {"reference": str(order.pk), "email": "ada@example.com"})
    assert headers["idempotency-key"] == f"delivery-{run.id}"
    order.refresh_from_db()
    assert order.status == "booked"


@pytest.mark.django_db
def test_refund_times_out_without_a_decision():
    run = events_jobs.refund.enqueue(order_id=4, amount_cents=100)
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
    run = children_jobs.ship_order.enqueue(order_id=6, warehouses=["north", "closed"])
    run_until_idle()
    run.refresh()
    assert run.status == RunStatus.FAILED
    assert run.error["type"].endswith(ChildRunFailed.__name__)
    failed_child = Run.objects.get(parent_id=run.id, status="failed")
    assert failed_child.kwargs == {"order_id": 6, "warehouse": "closed"}


@pytest.mark.django_db
def test_cancel_retry_and_restart_samples():
    run = events_jobs.refund.enqueue(order_id=8, amount_cents=100)
    run_until_idle()
    assert admin_tools.cancel(run.id).status == RunStatus.CANCELLED
    assert admin_tools.resume(run.id).status == RunStatus.PENDING
    run_until_idle()
    send_event(run.id, "decision", {"approved": True})
    run_until_idle()
    assert get_run(run.id).output == "re_8_100"
    restarted = admin_tools.start_over(run.id)
    assert (restarted.status, restarted.attempt) == (RunStatus.PENDING, 3)


@pytest.mark.django_db
def test_check_cancelled_sample_imports_rows():
    rows = [{"customer_email": f"c{n}@example.com", "amount_cents": n} for n in range(1, 1202)]
    run = cancellation_jobs.import_orders.enqueue(rows=rows)
    run_until_idle()
    assert get_run(run.id).output == 1201
    assert models.Order.objects.count() == 1201


@pytest.mark.django_db
def test_timeout_sample_sets_a_deadline():
    models.Order.objects.create(customer_email="a@example.com", amount_cents=1)
    run = timeouts_jobs.nightly_report.enqueue()
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
    monkeypatch.setattr(retries_jobs, "CHARGE_RETRY", retries_jobs.CHARGE_RETRY)
    run = retries_jobs.charge.enqueue(order_id=9, amount_cents=100)
    run_until_idle()
    assert (get_run(run.id).output, len(calls)) == ("ch_ok", 3)
    assert Step.objects.get(run_id=run.id, name="charge-card").attempts == 3
    assert retries_jobs.RUN_RETRY.max_attempts == 3
    assert issubclass(StepFailed, Exception)


@pytest.mark.django_db
def test_upgraded_job_runs_next_to_the_old_version():
    old = upgrading_jobs.welcome.enqueue(order_id=21)
    new = upgrading_jobs.welcome_v2.enqueue(order_id=22)
    run_until_idle()
    assert get_run(old.id).status == get_run(new.id).status == RunStatus.COMPLETED
    assert list(Step.objects.filter(run_id=new.id).values_list("name", flat=True)) == [
        "send-thanks",
        "ask-for-review",
    ]


@pytest.mark.django_db
def test_patched_job_asks_for_a_review_in_new_runs():
    run = patches_jobs.welcome_gift.enqueue(order_id=31)
    run_until_idle()
    assert list(Step.objects.filter(run_id=run.id).values_list("kind", "name")) == [
        ("step", "send-thanks"),
        ("patch", "ask-for-review"),
        ("step", "ask-for-review"),
        ("event", "delivered"),
    ]
    send_event(run.id, "delivered")
    run_until_idle()
    assert get_run(run.id).status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_a_jobs_own_retention_prunes_it_sooner():
    run = retention_jobs.ping_partner.enqueue(7)
    run_until_idle()
    Run.objects.filter(pk=run.id).update(finished_at=timezone.now() - timedelta(days=2))
    call_command("prune_runs", stdout=io.StringIO())
    assert not Run.objects.filter(pk=run.id).exists()


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


@pytest.mark.django_db
def test_the_schedules_sample_fires_once_on_the_october_night_in_paris():
    from zoneinfo import ZoneInfo

    from django_durable.conf import durable_settings
    from django_durable.models import Schedule
    from django_durable.schedules import forget_schedule, registered_schedules
    from django_durable.storage.schedules import produce_ticks, sync_schedules
    from docs.snippets.schedules import jobs as schedules_jobs

    names = {"sync eu", "sync us", f"{schedules_jobs.nightly_report.name}:30 2 * * *"}
    declared = {name: spec for name, spec in registered_schedules().items() if name in names}
    for name in names:  # workers of later tests must not store the sample's schedules
        forget_schedule(name)
    assert set(declared) == names
    alias = durable_settings.DATABASE
    sync_schedules(alias, declared)
    nightly = Schedule.objects.get(job_name=schedules_jobs.nightly_report.name)
    paris = ZoneInfo("Europe/Paris")
    evening = datetime(2026, 10, 24, 23, 0, tzinfo=paris)
    Schedule.objects.filter(pk=nightly.pk).update(last_tick_at=evening, next_fire_at=None)
    job_map = {schedules_jobs.nightly_report.name: schedules_jobs.nightly_report}
    for minutes in range(0, 6 * 60, 10):  # through the night, a look every ten minutes
        now = evening + timedelta(minutes=minutes)
        produce_ticks(alias, nightly.pk, now=now, jobs=job_map)
    run_until_idle()
    (run,) = Run.objects.filter(job_name=schedules_jobs.nightly_report.name)
    assert run.scheduled_at.astimezone(paris).isoformat() == "2026-10-25T02:30:00+02:00"
    assert run.output == "report for 2026-10-25"
