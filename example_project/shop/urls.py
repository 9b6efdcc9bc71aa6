from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("orders/", views.place_order, name="place-order"),
    path("orders/<int:order_id>/refund/", views.request_refund, name="request-refund"),
    path("refunds/<uuid:run_id>/decision/", views.decide_refund, name="decide-refund"),
]
