# shop/tests.py
from django.test import TestCase

from django_durable import RunStatus, send_event
from django_durable.testing import run_until_idle

from .jobs import refund


class RefundTests(TestCase):
    def test_approved_refund(self):
        run = refund.enqueue(order_id=7, amount_cents=1200)
        run_until_idle()
        run.refresh()
        self.assertEqual(run.status, RunStatus.WAITING)

        send_event(run.id, "decision", {"approved": True})
        run_until_idle()
        run.refresh()
        self.assertEqual(run.status, RunStatus.COMPLETED)
