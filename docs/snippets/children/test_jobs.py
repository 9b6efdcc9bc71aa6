# shop/test_jobs.py
import pytest

from django_durable import RunStatus
from django_durable.models import Step
from django_durable.testing import run_until_idle

from .jobs import ship_order


@pytest.mark.django_db
def test_every_warehouse_packs_a_parcel():
    run = ship_order.enqueue(order_id=5, warehouses=["north", "south"])

    # The parent starts its children and parks, the children run, then the parent
    # resumes: one call executes all of it.
    run_until_idle()

    run.refresh()
    assert run.status == RunStatus.COMPLETED
    assert run.output == ["north-5", "south-5"]
    assert Step.objects.filter(run__parent_id=run.id, name="pack").count() == 2
