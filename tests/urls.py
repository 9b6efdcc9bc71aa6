from django.contrib import admin
from django.urls import path

from django_durable.views import metrics

urlpatterns = [path("admin/", admin.site.urls), path("durable/metrics", metrics)]
