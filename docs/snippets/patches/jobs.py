# shop/jobs.py
from django_durable import job

from . import mailer


@job(name="shop.welcome_gift")
def welcome_gift(ctx, order_id: int) -> None:
    ctx.step("send-thanks", lambda: mailer.thanks(order_id))
    # Added in this deploy. Runs already past this point when it shipped replay their
    # journal without the marker: patched() is False for them and they keep the old path.
    if ctx.patched("ask-for-review"):
        ctx.step("ask-for-review", lambda: mailer.ask_for_review(order_id))
    ctx.wait_for_event("delivered")
    ctx.step("send-survey", lambda: mailer.thanks(order_id))
