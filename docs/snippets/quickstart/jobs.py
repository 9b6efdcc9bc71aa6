# shop/jobs.py
from datetime import timedelta

from django_durable import RetryPolicy, job

from . import payments
from .models import Order


@job(name="shop.fulfil_order", retry=RetryPolicy(max_attempts=3))
def fulfil_order(ctx, order_id: int) -> dict:
    def reserve_stock() -> dict:
        order = Order.objects.get(pk=order_id)
        order.status = "reserved"
        order.save(update_fields=["status"])
        return {"amount_cents": order.amount_cents, "email": order.customer_email}

    # atomic=True: the order update and the step's checkpoint commit together.
    order = ctx.step("reserve-stock", reserve_stock, atomic=True)
    ctx.progress(1, 2, "stock reserved")

    charge_id = ctx.step(
        "charge-card",
        lambda: payments.charge(order["amount_cents"], idempotency_key=f"order-{order_id}"),
        retry=RetryPolicy(max_attempts=5, initial_delay=timedelta(seconds=0.5)),
    )
    ctx.log.info("charged order %s as %s", order_id, charge_id)
    ctx.progress(2, 2, "card charged")
    return {"charge_id": charge_id}
