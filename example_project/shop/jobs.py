"""The shop's durable jobs. django_durable imports every installed app's jobs.py.

Every step body here goes through ``recorded_step``, which also writes a StepExecution
row each time the body really runs; the demo reads them to prove that a run recovered
from a killed worker does not run its finished steps again.
"""

import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django_durable import EventTimeout, RetryPolicy, StepFailed, job

from . import services
from .models import Order, StepExecution

# A timeout from the payment provider deserves a quick second try inside the step.
CHARGE_RETRY = RetryPolicy(
    max_attempts=3,
    initial_delay=timedelta(seconds=0.2),
    retry_on=(services.PaymentTimeout,),
)

# If a step still fails after its own retries, the whole run is tried again a minute
# later; the new attempt replays the finished steps and resumes at the failed one.
RUN_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(minutes=1), retry_on=(StepFailed,))

# Days in a real shop; seconds here so the demo can watch a sleeping run wake up.
DELIVERY_TIME = timedelta(seconds=2)


class PaymentRefused(Exception):
    """The order cannot be paid for; retrying the run would not help."""


def recorded_step(ctx, name: str, fn: Callable[[], Any], **options: Any) -> Any:
    """``ctx.step(name, fn)``, recording every execution of ``fn`` as a StepExecution."""

    def body() -> Any:
        StepExecution.objects.create(run_id=ctx.run_id, step=name, pid=os.getpid(), at=time.time())
        return fn()

    return ctx.step(name, body, **options)


@job(name="shop.pack_parcel")
def pack_parcel(ctx, order_id: int, parcel: int) -> str:
    """One parcel of an order, packed as a child run of ``fulfil_order``."""
    return recorded_step(ctx, "pack", lambda: services.pack_parcel(order_id, parcel))


@job(name="shop.fulfil_order", retry=RUN_RETRY)
def fulfil_order(ctx, order_id: int) -> dict:
    """Reserve stock, charge the card, pack and ship the parcels, then ask for a review."""

    def reserve_stock() -> dict:
        # atomic=True: this write and the step's checkpoint commit together, so the
        # order is reserved exactly once even if the worker dies right after.
        order = Order.objects.get(pk=order_id)
        order.status = Order.Status.RESERVED
        order.save(update_fields=["status"])
        return {
            "email": order.customer_email,
            "quantity": order.quantity,
            "amount_cents": order.amount_cents,
        }

    order = recorded_step(ctx, "reserve-stock", reserve_stock, atomic=True)
    ctx.progress(1, 5, "stock reserved")

    try:
        # The provider times out once, then answers: the step's retry policy hides it.
        charge_id = recorded_step(
            ctx,
            "charge-card",
            lambda: services.charge_card(
                order["email"], order["amount_cents"], idempotency_key=f"order-{order_id}"
            ),
            retry=CHARGE_RETRY,
        )
    except StepFailed as failed:
        # A declined card: give the stock back and stop. PaymentRefused is not in
        # RUN_RETRY.retry_on, so the run fails at once instead of retrying.
        recorded_step(
            ctx,
            "release-stock",
            lambda: Order.objects.filter(pk=order_id).update(status=Order.Status.CANCELLED),
            atomic=True,
        )
        raise PaymentRefused(failed.message) from failed
    ctx.log.info("charged %.2f EUR as %s", order["amount_cents"] / 100, charge_id)
    ctx.progress(2, 5, "card charged")

    # Fan out: one child run per parcel, which any worker may pack; the parent waits
    # without holding a worker and gets the children's outputs back in order.
    children = ctx.start_children(
        pack_parcel, [{"order_id": order_id, "parcel": n} for n in range(1, order["quantity"] + 1)]
    )
    labels = ctx.wait_for_children(children)
    ctx.progress(3, 5, f"{len(labels)} parcel(s) packed")

    tracking_number = recorded_step(
        ctx, "create-shipment", lambda: services.create_shipment(order_id, labels)
    )
    ctx.log.info("shipment booked, tracking number %s", tracking_number)

    def mark_fulfilled() -> None:
        Order.objects.filter(pk=order_id).update(
            status=Order.Status.FULFILLED, charge_id=charge_id, tracking_number=tracking_number
        )

    recorded_step(ctx, "mark-fulfilled", mark_fulfilled, atomic=True)
    ctx.progress(4, 5, "shipped; waiting for delivery")

    # A durable sleep: the run waits as `waiting`, holding no worker, and any worker
    # resumes it once the wake time (journaled, from the database clock) has passed.
    ctx.sleep("wait-for-delivery", DELIVERY_TIME)
    recorded_step(
        ctx,
        "ask-for-review",
        lambda: services.send_email(
            order["email"],
            f"How do you like your order {order_id}?",
            idempotency_key=f"order-{order_id}-review",
        ),
    )
    ctx.progress(5, 5, "done")
    return {"charge_id": charge_id, "tracking_number": tracking_number, "parcels": labels}


@job(name="shop.refund_order")
def refund_order(ctx, order_id: int, reason: str) -> dict:
    """Ask staff to approve a refund, wait for their decision, then refund the charge."""
    recorded_step(
        ctx,
        "notify-staff",
        lambda: services.send_email(
            "staff@shop.example",
            f"Refund requested for order {order_id}: {reason}",
            idempotency_key=f"refund-{ctx.run_id}",
        ),
    )
    ctx.progress(1, 2, "waiting for approval")

    # Sent with send_event(run_id, "approval", {"approved": true}) from the shop page or
    # the admin's "send event" action. Until then the run waits without a worker.
    try:
        decision = ctx.wait_for_event("approval", timeout=timedelta(days=7))
    except EventTimeout:
        return {"refunded": False, "why": "nobody decided within 7 days"}
    if not (isinstance(decision, dict) and decision.get("approved")):
        return {"refunded": False, "why": "refused by staff"}

    def refund() -> str:
        order = Order.objects.get(pk=order_id)
        return services.refund_charge(order.charge_id, idempotency_key=f"refund-{ctx.run_id}")

    refund_id = recorded_step(ctx, "refund-charge", refund)
    recorded_step(
        ctx,
        "mark-refunded",
        lambda: Order.objects.filter(pk=order_id).update(status=Order.Status.REFUNDED),
        atomic=True,
    )
    ctx.progress(2, 2, "refunded")
    return {"refunded": True, "refund_id": refund_id}
