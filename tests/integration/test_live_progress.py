"""The page of a running run shows its progress without a reload (the live JSON it polls).
tests/unit/test_live_progress_memory.py has how progress is stored, on InMemoryStorage;
tests/acceptance/test_live_progress_workers.py a real worker's long step."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from django_durable import RunStatus
from django_durable.testing.factories import RunFactory

# -- the JSON the run page polls ----------------------------------------------------------


def live_url(run_id):
    return reverse("admin:django_durable_run_live", args=[run_id])


@pytest.mark.django_db
def test_the_live_json_gives_status_progress_and_duration(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_run"))
    client.force_login(user)
    run = RunFactory(
        status=RunStatus.RUNNING,
        started_at=timezone.now() - timedelta(seconds=5),
        lease_expires_at=timezone.now() + timedelta(seconds=30),
        progress={"done": 3, "total": 4, "message": "<script>alert(1)</script>"},
    )
    response = client.get(live_url(run.pk))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    state = json.loads(response.content)
    assert state["status"] == "running" and state["running"] is True
    assert state["progress_percent"] == 75.0
    assert state["progress_text"] == "3 / 4 <script>alert(1)</script>"  # set as text
    assert state["duration"].endswith(" s")
    page = client.get(reverse("admin:django_durable_run_change", args=[run.pk])).content
    assert b"django_durable/run_live.js" in page and live_url(run.pk).encode() in page
    assert b"<script>alert(1)" not in page
    done = RunFactory(completed=True)
    page = client.get(reverse("admin:django_durable_run_change", args=[done.pk])).content
    assert b"run_live.js" not in page  # nothing to watch
    assert client.get(live_url("not-a-uuid")).status_code == 404


@pytest.mark.django_db
def test_the_live_json_needs_the_view_permission(client, django_user_model):
    run = RunFactory(status=RunStatus.RUNNING)
    assert client.get(live_url(run.pk)).status_code == 302  # to the admin's login
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(live_url(run.pk)).status_code == 403
