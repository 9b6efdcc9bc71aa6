"""A stand-in warehouse for the docs' samples (not shown in the docs)."""


def pack(order_id: int, warehouse: str) -> str:
    if warehouse == "closed":
        raise RuntimeError(f"warehouse {warehouse!r} is closed")
    return f"{warehouse}-{order_id}"
