# shop/tests.py
from django.test import TestCase

from django_durable import RunStatus
from django_durable.models import Step
from django_durable.testing import run_until_idle

from .jobs import fulfil_order
from .models import Order


class FulfilOrderTests(TestCase):
    def test_order_is_charged(self):
        order = Order.objects.create(customer_email="ada@example.com", amount_cents=1200)
        run = fulfil_order.enqueue(order_id=order.pk)

        self.assertEqual(run_until_idle(), 1)

        run.refresh()
        self.assertEqual(run.status, RunStatus.COMPLETED)
        self.assertIn("charge_id", run.output)
        steps = Step.objects.filter(run_id=run.id).values_list("name", flat=True)
        self.assertEqual(list(steps), ["reserve-stock", "charge-card"])
