from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.utils.module_loading import autodiscover_modules


class DurableConfig(AppConfig):
    name = "django_durable"
    label = "django_durable"
    verbose_name = "Durable runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .checks import check_runworker_command, check_schedules, check_settings

        # Registered here rather than at import, so importing checks.py (as the tests
        # do) has no side effect and registration happens exactly once.
        checks.register(check_settings)
        checks.register(check_runworker_command)
        checks.register(check_schedules)
        # Import every installed app's jobs.py so its @job functions are registered.
        autodiscover_modules("jobs")
        # With the django.tasks backend, also each app's tasks.py: defining a task
        # registers its job (see django_durable.tasks).
        if any(
            backend.get("BACKEND") == "django_durable.tasks.DurableBackend"
            for backend in getattr(settings, "TASKS", {}).values()
        ):
            autodiscover_modules("tasks")
