# shop/urls.py
from django.urls import path

from . import events_views, views

urlpatterns = [
    path("orders/", views.place_order),
    path("runs/<uuid:run_id>/", views.run_status),
    path("refunds/<uuid:run_id>/decision/", events_views.decide_refund),
]
