"""Settings for django-tasks with its database backend (django-tasks-db)."""

import environ

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
DATABASES = {"default": environ.Env().db_url("DATABASE_URL")}
# Persistent connections, as its docs advise for workers (CONN_MAX_AGE=0 reconnects per task).
DATABASES["default"]["CONN_MAX_AGE"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
