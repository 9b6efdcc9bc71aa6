"""The shop page: place orders, request and approve refunds, watch the runs progress."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from django_durable import RunNotFound, send_event
from django_durable.models import Run

from .jobs import fulfil_order, refund_order
from .models import Order


def index(request):
    # Top-level runs only: the parcel runs show up as their parent's progress.
    runs = Run.objects.filter(parent__isnull=True).order_by("-id")[:20]
    return render(request, "shop/index.html", {"runs": runs, "orders": Order.objects.all()})


@require_POST
def place_order(request):
    with transaction.atomic():
        order = Order.objects.create(
            customer_email=request.POST.get("email") or "you@example.com",
            item=request.POST.get("item") or "mystery box",
            quantity=max(1, min(int(request.POST.get("quantity") or 1), 5)),
            amount_cents=1999,
        )
        # Enqueued in the order's transaction: no run for an order that rolled back.
        fulfil_order.using(idempotency_key=f"fulfil-order-{order.pk}").enqueue(order_id=order.pk)
    messages.success(request, f"Order {order.pk} placed; a worker will fulfil it.")
    return redirect("index")


@require_POST
def request_refund(request, order_id: int):
    refund_order.enqueue(order_id=order_id, reason=request.POST.get("reason") or "changed my mind")
    messages.success(request, f"Refund for order {order_id} requested; it waits for approval.")
    return redirect("index")


@require_POST
def decide_refund(request, run_id):
    approved = request.POST.get("approved") == "yes"
    try:
        # What the admin's "send event" action does too; the waiting run wakes up.
        send_event(run_id, "approval", {"approved": approved})
    except (RunNotFound, ValueError) as error:  # unknown, or already finished
        messages.error(request, str(error))
    else:
        messages.success(request, f"Refund {'approved' if approved else 'refused'}.")
    return redirect("index")
