# shop/jobs.py
from datetime import timedelta

from django_durable import EventTimeout, job

from . import mailer, payments


@job(name="shop.refund")
def refund(ctx, order_id: int, amount_cents: int) -> str:
    ctx.step("ask-staff", lambda: mailer.refund_requested(order_id, str(ctx.run_id)))
    try:
        decision = ctx.wait_for_event("decision", timeout=timedelta(days=2))
    except EventTimeout:
        return "expired"
    if not decision["approved"]:
        return "refused"
    return ctx.step("refund", lambda: payments.refund(order_id, amount_cents))
