"""The admin in a real browser: Playwright driving Debian's Chromium, headless, against a
live server, with a real worker process. Also takes the admin guide's screenshots: into a
temporary directory, or into docs/img when DURABLE_SCREENSHOTS=1 (so a test run does not
rewrite the committed images every time)."""

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.db import connections
from django.utils import timezone

from django_durable import RunStatus
from django_durable.models import Run, Worker
from django_durable.testing import run_until_idle
from django_durable.testing.factories import RunFactory
from tests.testapp import jobs
from tests.workers import WorkerProcess

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("DURABLE_CHROMIUM") or shutil.which("chromium")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Under CI a missing browser is a failure, not a skip.
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"), reason="apt-get install chromium"
    ),
]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test
    # makes between page actions are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",  # root in a container has no user namespaces for the sandbox
                # The machine has no network: keep Chromium from trying to phone home.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-gpu",
            ],
        )
        yield chromium
        chromium.close()
        # Playwright's greenlets give the test body its own context, so Django (whose
        # connections are context-local) opened a second connection for it: close it, or
        # the test database cannot be dropped at the end.
        connections.close_all()


def make_staff(django_user_model, username, *codenames):
    user = django_user_model.objects.create_user(username, password="secret-pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_durable", codename__in=codenames)
    )
    return user


def log_in(browser, live_server, username):
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "secret-pw")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    # More room for the run list: start with the admin's navigation sidebar closed.
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    return page


def some_history():
    """Runs of every status, so lists and the overview look like a working system."""
    now = timezone.now()
    for minutes in range(0, 60, 7):
        RunFactory.create_batch(
            1 + minutes % 4,
            completed=True,
            job_name="tests.echo",
            started_at=now - timedelta(minutes=minutes, seconds=2),
            finished_at=now - timedelta(minutes=minutes),
        )
    RunFactory(
        job_name="tests.many_slow_steps",
        status=RunStatus.RUNNING,
        started_at=now - timedelta(seconds=40),
        progress={"done": 30, "total": 50, "message": "30 of 50 steps"},
        lease_owner="web-1:4242:9f1c2a",
        lease_expires_at=now + timedelta(seconds=25),
    )
    RunFactory(
        job_name="tests.approval", status=RunStatus.WAITING, waiting_for={"event": "approval"}
    )
    RunFactory(job_name="tests.echo", queue_name="reports")
    RunFactory(
        failed=True,
        job_name="tests.square",
        started_at=now - timedelta(minutes=20, seconds=3),
        finished_at=now - timedelta(minutes=20),
    )
    Worker.objects.create(
        worker_id="web-1:4242:9f1c2a",
        hostname="web-1",
        pid=4242,
        queues=["default"],
        jobs=sorted(jobs_registered()),
        concurrency=4,
        started_at=now - timedelta(hours=3),
        last_seen_at=now,
    )


def jobs_registered():
    from django_durable import registered_jobs

    return registered_jobs()


def test_operator_finds_a_failed_run_reads_its_traceback_and_retries_it(
    browser, live_server, django_user_model, tmp_path
):
    shots = DOCS_IMAGES if os.environ.get("DURABLE_SCREENSHOTS") else tmp_path
    make_staff(django_user_model, "operator", "view_run", "retry_run", "cancel_run", "restart_run")
    handle = jobs.fails_first_attempt.enqueue()
    run_until_idle()
    assert Run.objects.get(pk=handle.id).status == RunStatus.FAILED
    some_history()

    page = log_in(browser, live_server, "operator")
    page.click("a[href='/admin/django_durable/run/']")
    page.wait_for_selector("#result_list")
    assert page.locator(".durable-progress").count() == 1  # the running run
    page.screenshot(path=shots / "admin-list.png", full_page=True)
    page.click("#changelist-filter >> text=Failed")
    page.wait_for_url("**status__exact=failed**")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    assert set(rows.locator(".durable-badge").all_inner_texts()) == {"FAILED"}

    page.click(f"text={handle.id}")
    page.wait_for_url(f"**/run/{handle.id}/change/**")
    traceback = page.locator(".durable-traceback").first
    assert traceback.is_visible()
    assert "RuntimeError: first attempt fails" in traceback.inner_text()
    page.screenshot(path=shots / "admin-detail.png", full_page=True)

    page.click("button:has-text('Retry')")
    assert page.locator(".messagelist").inner_text().strip() == "Retried 1 run."
    assert page.locator(".durable-header .durable-badge").inner_text().lower() == "pending"

    worker = WorkerProcess(tmp_path / "worker.log", "--burst")
    assert worker.wait() == 0, worker.output
    page.reload()
    assert page.locator(".durable-header .durable-badge").inner_text().lower() == "completed"
    assert "attempt 2" in page.locator(".durable-header").inner_text()

    page.goto(f"{live_server.url}/admin/django_durable/")
    page.click("text=Overview")
    assert page.locator(".durable-card").first.is_visible()
    page.screenshot(path=shots / "admin-overview.png", full_page=True)
    for name in ("list", "detail", "overview"):
        assert (shots / f"admin-{name}.png").stat().st_size > 10_000, name


def test_a_viewer_sees_no_retry_button(browser, live_server, django_user_model):
    make_staff(django_user_model, "viewer", "view_run")
    handle = jobs.fails_first_attempt.enqueue()
    run_until_idle()
    page = log_in(browser, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/django_durable/run/{handle.id}/change/")
    assert "first attempt fails" in page.locator(".durable-traceback").first.inner_text()
    assert page.locator("button:has-text('Retry')").count() == 0
    assert page.locator(".durable-actions").count() == 0
    page.goto(f"{live_server.url}/admin/django_durable/run/")
    assert page.locator("select[name=action]").count() == 0


def open_sidebar_at_1400(browser, live_server, username):
    page = log_in(browser, live_server, username)
    page.set_viewport_size({"width": 1400, "height": 900})
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'true')")
    return page


def test_breadcrumbs_are_styled_and_every_list_column_fits_beside_the_sidebars(
    browser, live_server, django_user_model
):
    make_staff(django_user_model, "operator", "view_run", "send_event", "restart_run")
    some_history()
    waiting = Run.objects.get(job_name="tests.approval")
    failed = Run.objects.get(job_name="tests.square")
    page = open_sidebar_at_1400(browser, live_server, "operator")
    pages = [
        f"/admin/django_durable/run/{waiting.pk}/change/",
        "/admin/django_durable/runoverview/",
        f"/admin/django_durable/run/{waiting.pk}/actions/send_event/",
        f"/admin/django_durable/run/{failed.pk}/actions/restart/",
    ]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        crumbs = page.locator(".breadcrumbs")
        style = crumbs.evaluate(
            "e => [getComputedStyle(e).backgroundColor, parseFloat(getComputedStyle(e).padding)]"
        )
        assert style[0] not in ("rgba(0, 0, 0, 0)", "transparent") and style[1] > 0, path
        assert crumbs.locator("a", has_text="Home").is_visible(), path

    page.goto(f"{live_server.url}/admin/django_durable/run/")
    assert page.locator("#nav-sidebar").is_visible()
    results = page.locator("#changelist .results")
    # Nothing to scroll to: every column is within the visible part of the table.
    assert results.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    right = results.evaluate("e => e.getBoundingClientRect().right")
    headers = page.locator("#result_list thead th")
    assert headers.count() == 8  # the checkbox and seven columns
    for i in range(headers.count()):
        assert headers.nth(i).evaluate("e => e.getBoundingClientRect().right") <= right + 1


def test_a_running_runs_page_shows_its_progress_move_without_a_reload(
    browser, live_server, django_user_model, tmp_path
):
    make_staff(django_user_model, "viewer", "view_run")
    flag = tmp_path / "release"
    handle = jobs.ticks_until_released.enqueue(str(flag))
    worker = WorkerProcess(tmp_path / "worker.log", "--burst")
    try:
        page = log_in(browser, live_server, "viewer")
        url = f"{live_server.url}/admin/django_durable/run/{handle.id}/change/"
        for _ in range(100):  # until the worker has claimed the run
            page.goto(url)
            if page.locator(".durable-header .durable-badge").inner_text().lower() == "running":
                break
            page.wait_for_timeout(100)
        page.evaluate("window.notReloaded = true")
        text = page.locator("#durable-progress-text")
        page.wait_for_function(
            "() => /tick \\d+/.test(document.getElementById('durable-progress-text').textContent)"
        )
        first = text.inner_text()
        page.wait_for_function(
            "first => document.getElementById('durable-progress-text').textContent !== first",
            arg=first,
            timeout=15_000,
        )
        assert page.evaluate("window.notReloaded === true")  # updated in place
        assert page.locator("#durable-progress-row").is_visible()
        # Once the run has left running, the page reloads itself to show the outcome.
        with page.expect_navigation(timeout=15_000):
            flag.touch()
        assert worker.wait() == 0, worker.output
        assert page.evaluate("window.notReloaded === undefined")
        badge = page.locator(".durable-header .durable-badge")
        assert badge.inner_text().lower() == "completed"
        assert "run_live.js" not in page.content()  # a finished run's page does not poll
    finally:
        flag.touch()
        if worker.process.poll() is None:
            worker.kill()


def test_a_schedule_is_created_in_the_admin_after_a_cron_the_form_refuses(
    browser, live_server, django_user_model
):
    from django_durable.models import Schedule

    make_staff(django_user_model, "planner", "view_schedule", "add_schedule", "change_schedule")
    page = log_in(browser, live_server, "planner")
    page.goto(f"{live_server.url}/admin/django_durable/schedule/add/")
    page.fill("#id_name", "nightly report")
    page.fill("#id_job_name", jobs.tick.name)
    page.fill("#id_cron", "61 * * * *")
    page.fill("#id_timezone", "Europe/Paris")
    page.click("input[name=_continue]")
    page.wait_for_selector(".errorlist")
    assert "invalid cron" in " ".join(page.locator(".errorlist").all_inner_texts())
    assert page.locator(".errornote").is_visible()
    assert not Schedule.objects.exists()
    page.fill("#id_cron", "30 2 * * *")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=Next 5 fire times")
    assert page.locator("text=02:30:00").count() >= 5
    schedule = Schedule.objects.get(name="nightly report")
    assert (schedule.cron, schedule.timezone, schedule.from_code) == (
        "30 2 * * *",
        "Europe/Paris",
        False,
    )
    page.close()
