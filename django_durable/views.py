"""``metrics``: the Prometheus scrape endpoint a project mounts in its URLconf.

    path("durable/metrics", django_durable.views.metrics)

Who may read it, in order: anyone when ``DURABLE["METRICS_PUBLIC"]``; a request carrying
``Authorization: Bearer <DURABLE["METRICS_TOKEN"]>``; an active staff user with the
``django_durable.view_run`` permission, as in the admin. Everyone else gets 401 when a
token is configured (the scraper should send it) and 403 otherwise, never a redirect to
the login page, which a scraper would follow into an HTML page it cannot parse.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .conf import durable_settings
from .metrics import collect, render

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Runs, queues and workers as Prometheus gauges, read from the database."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(render(collect(durable_settings.DATABASE)), content_type=CONTENT_TYPE)


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """``None`` when the request may read the metrics, else the response that says no."""
    if durable_settings.METRICS_PUBLIC:
        return None
    token = durable_settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token is not None and scheme.lower() == "bearer":
        # Constant time, so the token cannot be guessed a character at a time.
        if hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return _unauthorized("invalid_token")
    user = getattr(request, "user", None)  # None without AuthenticationMiddleware
    if user is not None and user.is_active and user.is_staff:
        if user.has_perm("django_durable.view_run"):
            return None
        return HttpResponse("Forbidden: needs the view_run permission.\n", status=403)
    if token is not None:
        return _unauthorized(None)
    return HttpResponse(
        "Forbidden: log in as staff, or see DURABLE['METRICS_TOKEN'].\n", status=403
    )


def _unauthorized(error: str | None) -> HttpResponse:
    response = HttpResponse("Unauthorized: send Authorization: Bearer <token>.\n", status=401)
    challenge = 'Bearer realm="django-durable metrics"'
    response["WWW-Authenticate"] = challenge + (f', error="{error}"' if error else "")
    return response
