"""The shop's durable jobs. django_durable imports every installed app's jobs.py."""

from datetime import timedelta

from django_durable import RetryPolicy, job

from . import services
from .models import Order

# A timeout from the payment provider deserves a quick second try inside the step.
CHARGE_RETRY = RetryPolicy(
    max_attempts=3,
    initial_delay=timedelta(seconds=0.2),
    retry_on=(services.PaymentTimeout,),
)

# If a step still fails after its own retries, the whole run is tried again a minute
# later; the new attempt replays the finished steps and resumes at the failed one.
RUN_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(minutes=1))


@job(name="shop.fulfil_order", retry=RUN_RETRY)
def fulfil_order(ctx, order_id: int) -> dict:
    """Reserve stock, charge the card, ship the parcel and tell the customer."""

    def reserve_stock() -> dict:
        # atomic=True: this write and the step's checkpoint commit together, so the
        # order is reserved exactly once even if the worker dies right after.
        order = Order.objects.get(pk=order_id)
        order.status = Order.Status.RESERVED
        order.save(update_fields=["status"])
        return {
            "email": order.customer_email,
            "item": order.item,
            "quantity": order.quantity,
            "amount_cents": order.amount_cents,
        }

    order = ctx.step("reserve-stock", reserve_stock, atomic=True)
    ctx.log.info("reserved %s x %s", order["quantity"], order["item"])
    ctx.progress(1, 5, "stock reserved")

    # Each failed attempt is logged with the run before the step is tried again.
    charge_id = ctx.step(
        "charge-card",
        lambda: services.charge_card(order["amount_cents"], idempotency_key=f"order-{order_id}"),
        retry=CHARGE_RETRY,
    )
    ctx.log.info("charged %.2f EUR as %s", order["amount_cents"] / 100, charge_id)
    ctx.progress(2, 5, "card charged")

    tracking_number = ctx.step(
        "create-shipment",
        lambda: services.create_shipment(order_id, order["item"], order["quantity"]),
    )
    ctx.log.info("shipment booked, tracking number %s", tracking_number)
    ctx.progress(3, 5, "shipment created")

    ctx.step(
        "send-confirmation",
        lambda: services.send_email(
            order["email"],
            f"Your order {order_id} is on its way ({tracking_number})",
            idempotency_key=f"order-{order_id}-confirmation",
        ),
    )
    ctx.log.info("confirmation sent to %s", order["email"])
    ctx.progress(4, 5, "confirmation sent")

    def mark_fulfilled() -> None:
        Order.objects.filter(pk=order_id).update(
            status=Order.Status.FULFILLED, charge_id=charge_id, tracking_number=tracking_number
        )

    ctx.step("mark-fulfilled", mark_fulfilled, atomic=True)
    ctx.progress(5, 5, "order fulfilled")
    return {"order_id": order_id, "charge_id": charge_id, "tracking_number": tracking_number}
