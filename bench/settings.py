"""Settings for the benchmark: DATABASE_URL names the throwaway PostgreSQL it starts."""

import environ

env = environ.Env()

SECRET_KEY = "bench-only"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django_durable", "bench.benchapp"]
DATABASES = {"default": env.db_url("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = None
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Workers keep every run: bench/prune.py prunes with prune_runs --older-than, on its own
# schedule, so no worker's housekeeping pass lands inside a measured drain.
DURABLE = {"POLL_INTERVAL": 1.0, "RETENTION": None}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_durable": {"level": "WARNING"}},
}
