from django.contrib import admin

from .models import Order, StepExecution


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "customer_email", "item", "quantity", "status", "tracking_number"]
    list_filter = ["status"]


@admin.register(StepExecution)
class StepExecutionAdmin(admin.ModelAdmin):
    list_display = ["run_id", "step", "pid", "at"]
    list_filter = ["step"]
