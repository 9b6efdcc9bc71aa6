"""A stand-in payment provider for the docs' samples (not shown in the docs)."""

from collections import Counter

charges: Counter[str] = Counter()


def charge(amount_cents: int, *, idempotency_key: str) -> str:
    charges[idempotency_key] += 1
    return f"ch_{idempotency_key}"


def refund(order_id: int, amount_cents: int) -> str:
    return f"re_{order_id}_{amount_cents}"
