# shop/urls.py
from django.urls import path

from . import views

urlpatterns = [
    path("refunds/<uuid:run_id>/decision/", views.decide_refund),
]
