from django.db import models


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "new", "New"
        RESERVED = "reserved", "Stock reserved"
        FULFILLED = "fulfilled", "Fulfilled"

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
