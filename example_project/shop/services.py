"""Stand-ins for the outside world: a payment provider, a warehouse, a carrier, a mailer.

Real ones would be HTTP APIs. A plain step may run more than once (if its worker dies
before the step's checkpoint is saved), so every call that changes something passes a key
that lets the other side recognise a repeat, as real payment APIs allow.
"""

import threading
import time
from collections import Counter

_lock = threading.Lock()
_charge_calls: Counter[str] = Counter()

# Cards the demo's bank refuses, by customer: a failure no retry can fix.
DECLINED_CUSTOMERS = {"mallory@example.com"}


class PaymentTimeout(ConnectionError):
    """The provider did not answer in time; trying again with the same key is safe."""


class CardDeclined(Exception):
    """The bank refused the charge; trying again will not help."""


def charge_card(customer: str, amount_cents: int, *, idempotency_key: str) -> str:
    """Charge the card and return the charge id.

    This provider is flaky on purpose: the first call for each key in a process times
    out and the next one succeeds, so every order shows a step retry.
    """
    with _lock:
        _charge_calls[idempotency_key] += 1
        calls = _charge_calls[idempotency_key]
    if calls == 1:
        raise PaymentTimeout(f"no answer from the payment provider for {idempotency_key}")
    if customer in DECLINED_CUSTOMERS:
        raise CardDeclined(f"the bank declined the card of {customer}")
    return f"ch_{idempotency_key}"


def refund_charge(charge_id: str, *, idempotency_key: str) -> str:
    """Refund a charge and return the refund id."""
    return f"re_{charge_id}"


def pack_parcel(order_id: int, parcel: int) -> str:
    """Ask the warehouse to pack one parcel of an order; return its label."""
    return f"PARCEL-{order_id}-{parcel}"


def create_shipment(order_id: int, parcels: list[str]) -> str:
    """Book the parcels with the carrier and return the tracking number.

    The carrier's API is slow, which gives the demo time to kill a worker mid-step.
    """
    time.sleep(1.5)
    return f"TRACK-{order_id:06d}"


def send_email(to: str, subject: str, *, idempotency_key: str) -> str:
    """Send an email and return the mailer's message id."""
    return f"<{idempotency_key}@shop.example>"
