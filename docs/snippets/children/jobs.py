# shop/jobs.py
from django_durable import ChildRunFailed, job

from . import logistics


@job(name="shop.pack_parcel")
def pack_parcel(ctx, order_id: int, warehouse: str) -> str:
    return ctx.step("pack", lambda: logistics.pack(order_id, warehouse))


@job(name="shop.ship_order")
def ship_order(ctx, order_id: int, warehouses: list) -> list:
    parcels = ctx.start_children(
        pack_parcel, [{"order_id": order_id, "warehouse": name} for name in warehouses]
    )
    try:
        return ctx.wait_for_children(parcels)
    except ChildRunFailed as failed:
        for failure in failed.failures:
            ctx.log.error("parcel run %s ended %s", failure["id"], failure["status"])
        raise
