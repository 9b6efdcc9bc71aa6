# shop/jobs.py
from datetime import timedelta

from django_durable import job

from .models import Order


@job(name="shop.nightly_report", timeout=timedelta(hours=1))
def nightly_report(ctx) -> int:
    return ctx.step("count-orders", lambda: Order.objects.count())
