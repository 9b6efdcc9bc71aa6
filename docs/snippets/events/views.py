# shop/views.py
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_POST

from django_durable import RunNotFound, send_event


@require_POST
def decide_refund(request, run_id):
    try:
        send_event(run_id, "decision", {"approved": request.POST.get("approved") == "yes"})
    except RunNotFound:
        raise Http404 from None
    except ValueError:  # the run has already finished
        return HttpResponse(status=409)
    return HttpResponse(status=204)
