# shop/jobs.py
from datetime import timedelta

import httpx

from django_durable import RetryPolicy, job

from .models import Order

CARRIER = "https://carrier.example.com"


@job(name="shop.book_delivery")
async def book_delivery(ctx, order_id: int) -> str:
    async def load_order() -> str:
        # Django's async ORM: this step's own thread and connection, closed after it.
        order = await Order.objects.aget(pk=order_id)
        return order.customer_email

    email = await ctx.step("load-order", load_order)

    async def book() -> str:
        # The carrier's API takes seconds: the worker awaits hundreds of these at once.
        async with httpx.AsyncClient(base_url=CARRIER, timeout=30) as client:
            response = await client.post(
                "/bookings",
                json={"reference": str(order_id), "email": email},
                # Sent again if the worker dies mid-call: the carrier books once.
                headers={"Idempotency-Key": f"delivery-{ctx.run_id}"},
            )
            response.raise_for_status()
            return response.json()["booking_id"]

    booking = await ctx.step("book", book, retry=RetryPolicy(max_attempts=5))
    ctx.log.info("booked %s", booking)  # not awaited: stored by the next operation

    async def mark_booked() -> None:
        await Order.objects.filter(pk=order_id).aupdate(status="booked")

    # The update commits with the step's checkpoint: it happens exactly once.
    await ctx.step("mark-booked", mark_booked, atomic=True)
    await ctx.sleep("until-pickup", timedelta(days=1))
    return booking
