# shop/urls.py
from django.contrib import admin
from django.urls import path

import django_durable.views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("durable/metrics", django_durable.views.metrics),
]
