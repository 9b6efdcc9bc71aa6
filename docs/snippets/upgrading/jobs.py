# shop/jobs.py
from django_durable import job

from . import mailer


# Version 1 stays registered until none of its runs is pending, running or waiting:
# their journals hold its operations, in its order.
@job(name="shop.welcome")
def welcome(ctx, order_id: int) -> None:
    ctx.step("send-thanks", lambda: mailer.thanks(order_id))


# Version 2 adds a step, under a new name; new runs are enqueued with it.
@job(name="shop.welcome.v2")
def welcome_v2(ctx, order_id: int) -> None:
    ctx.step("send-thanks", lambda: mailer.thanks(order_id))
    ctx.step("ask-for-review", lambda: mailer.ask_for_review(order_id))
