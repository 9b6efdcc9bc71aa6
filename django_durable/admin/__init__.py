"""The Django admin for runs (list, detail, actions, the overview page) and schedules."""

from django.contrib import admin

from ..models import Run, RunOverview, Schedule
from .overview import OverviewAdmin
from .runs import RunAdmin
from .schedules import ScheduleAdmin

admin.site.register(Run, RunAdmin)
admin.site.register(RunOverview, OverviewAdmin)
admin.site.register(Schedule, ScheduleAdmin)
