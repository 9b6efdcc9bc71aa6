# shop/jobs.py
from datetime import UTC, datetime, timedelta

from django_durable import job

from . import mailer


@job(name="shop.follow_up")
def follow_up(ctx, order_id: int) -> None:
    ctx.step("send-thanks", lambda: mailer.thanks(order_id))
    ctx.sleep("wait-for-delivery", timedelta(days=3))
    ctx.step("ask-for-review", lambda: mailer.ask_for_review(order_id))


@job(name="shop.launch_reminder")
def launch_reminder(ctx, order_id: int) -> None:
    # sleep_until takes a timezone-aware datetime; a naive one raises ValueError.
    ctx.sleep_until("until-launch", datetime(2031, 3, 1, 9, 0, tzinfo=UTC))
    ctx.step("remind", lambda: mailer.thanks(order_id))
