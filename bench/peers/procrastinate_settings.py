"""Settings for Procrastinate's Django integration."""

import environ

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["procrastinate.contrib.django"]
DATABASES = {"default": environ.Env().db_url("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PROCRASTINATE_IMPORT_PATHS = ["bench.peers.procrastinate_jobs"]
