# shop/views.py
from django.db import transaction
from django.http import HttpRequest, JsonResponse

from .tasks import follow_up, send_thanks


def order_paid(request: HttpRequest, order_id: int) -> JsonResponse:
    with transaction.atomic():
        # ... mark the order paid ...
        result = send_thanks.enqueue(order_id)  # stored in this transaction
        follow_up.enqueue(order_id)
    return JsonResponse({"task": result.id, "status": result.status})


def task_status(request: HttpRequest, result_id: str) -> JsonResponse:
    result = send_thanks.get_result(result_id)  # from any process
    body = {"status": result.status, "errors": [e.exception_class_path for e in result.errors]}
    if result.is_finished and not result.errors:
        body["value"] = result.return_value
    return JsonResponse(body)
