# shop/urls.py
from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.place_order),
    path("runs/<uuid:run_id>/", views.run_status),
]
