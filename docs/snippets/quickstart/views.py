# shop/views.py
from django.db import transaction
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_POST

from django_durable import RunNotFound, get_run

from .jobs import fulfil_order
from .models import Order


@require_POST
def place_order(request):
    with transaction.atomic():
        order = Order.objects.create(
            customer_email=request.POST["email"], amount_cents=int(request.POST["amount_cents"])
        )
        # With an idempotency key, enqueueing again returns the existing run (run.created
        # is then False) instead of starting a second one.
        run = fulfil_order.using(idempotency_key=f"fulfil-order-{order.pk}").enqueue(
            order_id=order.pk
        )
    return JsonResponse({"order": order.pk, "run": str(run.id)}, status=202)


def run_status(request, run_id):
    try:
        run = get_run(run_id)
    except RunNotFound:
        raise Http404 from None
    return JsonResponse({"status": run.status, "output": run.output})
