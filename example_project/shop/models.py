from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        RESERVED = "reserved", "Stock reserved"
        FULFILLED = "fulfilled", "Fulfilled"
        CANCELLED = "cancelled", "Cancelled"
        REFUNDED = "refunded", "Refunded"

    customer_email = models.EmailField()
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    charge_id = models.CharField(max_length=50, blank=True)
    tracking_number = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk}: {self.quantity} x {self.item} ({self.status})"


class StepExecution(models.Model):
    """One execution of a step body, committed by the body itself.

    The journal says which steps finished; these rows say how often each body really ran,
    in which process, so the demo can show that a recovered run skips finished steps.
    """

    run_id = models.UUIDField(db_index=True)
    step = models.CharField(max_length=50)
    pid = models.IntegerField()
    # time.time() in the worker: comparable across the processes of one machine.
    at = models.FloatField()

    def __str__(self) -> str:
        return f"{self.step} of run {self.run_id} in pid {self.pid}"
