"""The Django admin for runs: list, detail, actions and the overview page."""

from django.contrib import admin

from ..models import Run, RunOverview
from .overview import OverviewAdmin
from .runs import RunAdmin

admin.site.register(Run, RunAdmin)
admin.site.register(RunOverview, OverviewAdmin)
