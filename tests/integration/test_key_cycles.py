"""A run cannot start a child whose concurrency key one of its ancestors holds."""

import pytest

from django_durable import RunStatus
from django_durable.models import Run
from django_durable.testing import run_until_idle
from tests.testapp import jobs

pytestmark = pytest.mark.django_db


def test_a_grandchild_with_its_grandparents_key_is_refused_at_enqueue():
    handle = jobs.keyed_grandparent.using(concurrency_key="acct-X").enqueue("acct-X")
    run_until_idle()
    handle.refresh()
    middle = Run.objects.get(parent_id=handle.id)
    assert middle.status == RunStatus.FAILED
    message = middle.errors[-1]["message"]
    assert "cannot take the concurrency key 'acct-X'" in message
    assert f"ancestor run {handle.id} (tests.keyed_grandparent) holds it" in message
    assert not Run.objects.filter(parent_id=middle.id).exists()  # never created
    assert handle.status == RunStatus.FAILED  # its wait ended: nothing is left stuck


def test_a_grandchild_with_another_key_runs():
    handle = jobs.keyed_grandparent.using(concurrency_key="acct-X").enqueue("acct-Y")
    run_until_idle()
    handle.refresh()
    assert handle.status == RunStatus.COMPLETED and handle.output == [[9]]
