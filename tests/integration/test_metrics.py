"""The metrics view: its numbers, read back with Prometheus's own parser, and who may read it."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from django_durable.metrics import collect
from django_durable.models import Run, Worker
from django_durable.testing.factories import RunFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
URL = "/durable/metrics"
TOKEN = "scrape-token-0123456789"


def parse(response):
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    assert all(family.type == "gauge" for family in families.values())
    return {
        name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for name, family in families.items()
    }


def ago(**delta):
    return timezone.now() - timedelta(**delta)


def worker(worker_id, *, queues, concurrency, last_seen_at):
    return Worker.objects.create(
        worker_id=worker_id,
        hostname="host",
        pid=1,
        queues=queues,
        jobs=["tests.echo"],
        concurrency=concurrency,
        started_at=last_seen_at,
        last_seen_at=last_seen_at,
    )


@pytest.fixture
def known_runs():
    """Two queues: "default" served by a live worker, "reports" by none (its worker died)."""
    RunFactory(run_after=ago(minutes=5))
    RunFactory.create_batch(2)
    RunFactory(run_after=timezone.now() + timedelta(hours=1))  # not due: not in the age
    RunFactory.create_batch(2, status="running", lease_owner="w1")
    RunFactory(status="waiting", wake_at=timezone.now() + timedelta(hours=1))
    RunFactory.create_batch(2, queue_name="reports", run_after=ago(minutes=10))
    RunFactory.create_batch(2, completed=True)
    RunFactory(completed=True, finished_at=ago(minutes=5))  # too long ago to count
    RunFactory(failed=True, queue_name="reports")
    RunFactory(status="cancelled", finished_at=ago(minutes=10))
    worker("w1", queues=["default"], concurrency=4, last_seen_at=timezone.now())
    worker("w2", queues=None, concurrency=8, last_seen_at=ago(hours=1))


def default(status):
    return (("queue", "default"), ("status", status))


def reports(status):
    return (("queue", "reports"), ("status", status))


def test_values_for_a_known_set_of_runs(client, settings, known_runs):
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    metrics = parse(client.get(URL))
    assert metrics["durable_runs"] == {
        default("pending"): 4,
        default("running"): 2,
        default("waiting"): 1,
        reports("pending"): 2,
        reports("running"): 0,
        reports("waiting"): 0,
    }
    ages = metrics["durable_oldest_pending_age_seconds"]
    assert set(ages) == {(("queue", "default"),), (("queue", "reports"),)}
    assert 300 <= ages[(("queue", "default"),)] < 330
    assert 600 <= ages[(("queue", "reports"),)] < 630
    # w2, which took every queue, stopped heartbeating an hour ago.
    assert metrics["durable_runs_unserved"] == {
        (("queue", "default"),): 0,
        (("queue", "reports"),): 2,
    }
    assert metrics["durable_workers"] == {(): 1}
    assert metrics["durable_worker_slots"] == {(("worker", "w1"),): 4}
    assert metrics["durable_worker_busy_slots"] == {(("worker", "w1"),): 2}
    assert metrics["durable_runs_finished_last_minute"] == {
        default("completed"): 2,
        default("failed"): 0,
        default("cancelled"): 0,
        reports("completed"): 0,
        reports("failed"): 1,
        reports("cancelled"): 0,
    }


def test_a_worker_on_every_queue_serves_them_all(client, settings, known_runs):
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    Worker.objects.filter(pk="w2").update(last_seen_at=timezone.now())
    metrics = parse(client.get(URL))
    assert set(metrics["durable_runs_unserved"].values()) == {0}
    assert metrics["durable_workers"] == {(): 2}
    assert metrics["durable_worker_busy_slots"][(("worker", "w2"),)] == 0


def test_an_empty_database_gives_every_metric_without_samples(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    metrics = parse(client.get(URL))
    assert metrics.pop("durable_workers") == {(): 0}
    assert metrics == {
        name: {}
        for name in (
            "durable_runs",
            "durable_oldest_pending_age_seconds",
            "durable_runs_unserved",
            "durable_worker_slots",
            "durable_worker_busy_slots",
            "durable_runs_finished_last_minute",
        )
    }


def test_label_values_are_escaped(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    queue = 'we"ird\\queue\nname'
    RunFactory(queue_name=queue)
    metrics = parse(client.get(URL))
    assert metrics["durable_runs"][(("queue", queue), ("status", "pending"))] == 1


def test_five_queries_whatever_the_runs(django_assert_num_queries, known_runs):
    with django_assert_num_queries(5):
        collect("default")


@pytest.mark.django_db(databases=["default", "durable"])
def test_reads_the_durable_database(client, settings):
    settings.DURABLE = {**settings.DURABLE, "DATABASE": "durable", "METRICS_PUBLIC": True}
    Run.objects.using("durable").create(job_name="tests.echo", queue_name="elsewhere")
    RunFactory(queue_name="default")  # on "default", which holds no runs for the app
    metrics = parse(client.get(URL))
    assert set(metrics["durable_runs"]) == {
        (("queue", "elsewhere"), ("status", status)) for status in ("pending", "running", "waiting")
    }


# -- who may read it -------------------------------------------------------------------------


def user(django_user_model, *, is_staff=True, can_view=True):
    person = django_user_model.objects.create_user("ops", password="pw", is_staff=is_staff)
    if can_view:
        person.user_permissions.add(
            Permission.objects.get(content_type__app_label="django_durable", codename="view_run")
        )
    return person


def test_anonymous_is_refused_without_a_redirect(client):
    response = client.get(URL)
    assert response.status_code == 403 and "Location" not in response


def test_staff_with_the_view_permission_may_read(client, django_user_model):
    client.force_login(user(django_user_model))
    parse(client.get(URL))


@pytest.mark.parametrize(
    "kind", [{"is_staff": False}, {"can_view": False}], ids=["not staff", "no permission"]
)
def test_others_logged_in_are_forbidden(client, django_user_model, kind):
    client.force_login(user(django_user_model, **kind))
    assert client.get(URL).status_code == 403


def test_superuser_may_read(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    parse(client.get(URL))


def test_a_token_lets_a_scraper_in(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_TOKEN": TOKEN}
    parse(client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"}))
    parse(client.get(URL, headers={"Authorization": f"bearer {TOKEN}"}))


@pytest.mark.parametrize(
    "header",
    [None, f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN],
    ids=["none", "wrong", "empty", "other scheme", "no scheme"],
)
def test_without_the_token_a_scraper_is_told_to_send_it(client, settings, header):
    settings.DURABLE = {**settings.DURABLE, "METRICS_TOKEN": TOKEN}
    headers = {} if header is None else {"Authorization": header}
    response = client.get(URL, headers=headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer ")


def test_staff_sessions_still_work_with_a_token_set(client, settings, django_user_model):
    settings.DURABLE = {**settings.DURABLE, "METRICS_TOKEN": TOKEN}
    client.force_login(user(django_user_model))
    parse(client.get(URL))


def test_no_token_configured_means_no_bearer_access(client):
    assert client.get(URL, headers={"Authorization": "Bearer None"}).status_code == 403


def test_public_serves_anyone(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    parse(client.get(URL))


def test_only_get_and_head(client, settings):
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    assert client.post(URL).status_code == 405
    assert client.head(URL).status_code == 200


# -- the operations guide's samples ------------------------------------------------------------


def test_the_guides_settings_pass_the_checks_and_let_prometheus_in(client, settings, monkeypatch):
    from django_durable.checks import check_settings

    monkeypatch.setenv("DURABLE_METRICS_TOKEN", TOKEN)
    namespace: dict = {}
    exec((ROOT / "docs/snippets/settings_metrics.py").read_text(), namespace)
    settings.DURABLE = {**settings.DURABLE, **namespace["DURABLE"]}
    assert check_settings() == []
    parse(client.get(URL, headers={"Authorization": f"Bearer {TOKEN}"}))


def test_the_guides_urlconf_mounts_the_view(client, settings):
    settings.ROOT_URLCONF = "docs.snippets.metrics.urls"
    settings.DURABLE = {**settings.DURABLE, "METRICS_PUBLIC": True}
    parse(client.get("/durable/metrics"))
