"""A stand-in mailer for the docs' samples (not shown in the docs)."""

sent: list[str] = []


def thanks(order_id: int) -> str:
    sent.append(f"thanks {order_id}")
    return f"thanks-{order_id}"


def ask_for_review(order_id: int) -> str:
    sent.append(f"review {order_id}")
    return f"review-{order_id}"


def refund_requested(order_id: int, run_id: str) -> str:
    sent.append(f"refund {order_id} {run_id}")
    return f"refund-{order_id}"
