# shop/models.py
from django.db import models


class Order(models.Model):
    customer_email = models.EmailField()
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=16, default="new")

    # Not shown in the docs: the docs' test suite registers this model in its test app.
    class Meta:
        app_label = "testapp"
        db_table = "docs_order"

    def __str__(self) -> str:
        return f"order {self.pk} ({self.status})"
