# shop/jobs.py
from datetime import timedelta

from django_durable import RetryPolicy, job

from . import payments

# Inside the step: a provider timeout is worth a few quick tries.
CHARGE_RETRY = RetryPolicy(
    max_attempts=4,
    initial_delay=timedelta(seconds=0.5),
    backoff_factor=2.0,
    max_delay=timedelta(seconds=10),
    retry_on=(ConnectionError, TimeoutError),
)

# The whole run: when a step still fails, try the run again ten minutes later, resuming
# at that step. Two more attempts, then the run fails.
RUN_RETRY = RetryPolicy(max_attempts=3, initial_delay=timedelta(minutes=10))


@job(name="shop.charge", retry=RUN_RETRY)
def charge(ctx, order_id: int, amount_cents: int) -> str:
    return ctx.step(
        "charge-card",
        lambda: payments.charge(amount_cents, idempotency_key=f"order-{order_id}"),
        retry=CHARGE_RETRY,
    )
