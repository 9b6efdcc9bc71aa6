# shop/jobs.py
from django_durable import job

from .models import Order


@job(name="shop.import_orders")
def import_orders(ctx, rows: list) -> int:
    def import_rows() -> int:
        for start in range(0, len(rows), 500):
            # Reads the cancel request now, not at the next operation.
            ctx.check_cancelled()
            Order.objects.bulk_create(Order(**row) for row in rows[start : start + 500])
        return len(rows)

    return ctx.step("import", import_rows)
