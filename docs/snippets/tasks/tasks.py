# shop/tasks.py
from datetime import timedelta

from django.tasks import task

from . import mailer


@task
def send_thanks(order_id: int) -> str:
    return mailer.thanks(order_id)


@task(takes_context=True, priority=10)
def follow_up(context, order_id: int) -> list[str]:
    ctx = context.durable  # the run context: checkpointed steps, durable sleeps
    thanked = ctx.step("thanks", lambda: mailer.thanks(order_id))
    ctx.sleep("wait-a-week", timedelta(days=7))
    asked = ctx.step("ask-for-review", lambda: mailer.ask_for_review(order_id))
    return [thanked, asked]
