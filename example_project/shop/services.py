"""Stand-ins for the outside world: a payment provider, a carrier and a mailer.

Real ones would be HTTP APIs. A job step may run more than once (if its worker dies
before the step's checkpoint is saved), so every call passes a key that lets the other
side recognise a repeat, as real payment APIs allow.
"""

import threading
from collections import Counter

_lock = threading.Lock()
_charge_calls: Counter[str] = Counter()


class PaymentTimeout(ConnectionError):
    """The provider did not answer in time; trying again with the same key is safe."""


def charge_card(amount_cents: int, *, idempotency_key: str) -> str:
    """Charge the card and return the charge id.

    This provider is flaky on purpose: the first call for each key times out, the next
    one succeeds, so the demo shows a step retry every time.
    """
    with _lock:
        _charge_calls[idempotency_key] += 1
        calls = _charge_calls[idempotency_key]
    if calls == 1:
        raise PaymentTimeout(f"no answer from the payment provider for {idempotency_key}")
    return f"ch_{idempotency_key}"


def create_shipment(order_id: int, item: str, quantity: int) -> str:
    """Book a parcel with the carrier and return its tracking number."""
    return f"TRACK-{order_id:06d}"


def send_email(to: str, subject: str, *, idempotency_key: str) -> str:
    """Send an email and return the mailer's message id."""
    return f"<{idempotency_key}@shop.example>"
