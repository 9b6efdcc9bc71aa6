"""Settings for the test suite. DATABASE_URL picks the database (SQLite by default)."""

import os
from pathlib import Path

import environ

from django_durable import RetryPolicy

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()

SECRET_KEY = "tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_durable",
    "tests.testapp",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

database = env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
if database["ENGINE"].endswith("sqlite3"):
    database["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    # A file, not memory, so worker subprocesses see the test database.
    database["TEST"] = {"NAME": str(BASE_DIR / f"test-{os.getpid()}.sqlite3")}
elif database["ENGINE"].endswith("mysql"):
    database["OPTIONS"] = {"isolation_level": "read committed", "charset": "utf8mb4"}
# Worker subprocesses started by the tests connect straight to the test database.
if os.environ.get("DURABLE_TEST_DB_NAME"):
    database["NAME"] = os.environ["DURABLE_TEST_DB_NAME"]
DATABASES = {"default": database}

# PostgreSQL through PgBouncer in transaction pooling mode (.ci/databases.sh starts one):
# DURABLE_TEST_PGBOUNCER_URL says where it is. The "pgbouncer" alias reaches the same test
# database through it; worker subprocesses started with DURABLE_TEST_THROUGH_PGBOUNCER
# use it as their default database.
if os.environ.get("DURABLE_TEST_PGBOUNCER_URL") and database["ENGINE"].endswith("postgresql"):
    bouncer = env.db_url_config(os.environ["DURABLE_TEST_PGBOUNCER_URL"])
    pooled = {
        **database,
        **{key: bouncer[key] for key in ("HOST", "PORT", "USER", "PASSWORD")},
        # What Django's docs ask for behind a transaction pooler; DURABLE stays default.
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    if os.environ.get("DURABLE_TEST_THROUGH_PGBOUNCER"):
        DATABASES = {"default": pooled}
    else:
        DATABASES["pgbouncer"] = {**pooled, "TEST": {"MIRROR": "default"}}

# The django.tasks backend under its own alias, so "default" stays Django's default and
# other tests see no change; tests/testapp/tasks.py declares its tasks with backend="durable".
try:
    import django.tasks  # noqa: F401

    TASKS_PACKAGE = "django.tasks"
except ImportError:  # Django 5.2: the django-tasks backport, an app of its own
    TASKS_PACKAGE = "django_tasks"
    INSTALLED_APPS.append("django_tasks")
TASKS = {
    "default": {"BACKEND": f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"},
    "durable": {
        "BACKEND": "django_durable.tasks.DurableBackend",
        "QUEUES": ["default", "other"],
        "OPTIONS": {
            "TASKS": {
                "tests.testapp.tasks.flaky_task": {
                    "retry": RetryPolicy(max_attempts=2, initial_delay=0, jitter=0)
                },
                "tests.testapp.tasks.hang": {"timeout": 0.5},
            }
        },
    },
}

# A second database holding django_durable's tables, for the tests that set
# DURABLE["DATABASE"] = "durable" (tests/integration/test_admin_alias.py). No router: every
# alias gets every table, and the default manager keeps reading "default", so a read that
# ignores the alias finds nothing. pytest-django creates it only for tests that ask for it.
DATABASES["durable"] = {**database}
if database["ENGINE"].endswith("sqlite3"):
    DATABASES["durable"]["TEST"] = {"NAME": str(BASE_DIR / f"test-{os.getpid()}-durable.sqlite3")}
else:
    DATABASES["durable"]["NAME"] = f"{database['NAME']}_alias"
    DATABASES["durable"]["TEST"] = {}
    # Worker subprocesses never use the alias, but Django 6.1's model checks on MySQL
    # connect to every alias (JSONField support), so it must name a database that exists.
    if os.environ.get("DURABLE_TEST_DB_NAME"):
        DATABASES["durable"]["NAME"] = database["NAME"]

DURABLE = {
    "STALE_AFTER": float(os.environ.get("DURABLE_TEST_STALE_AFTER", 30)),
    "POLL_INTERVAL": 0.1,
    # Worker subprocesses of the retention tests prune often; others at the default.
    "PRUNE_INTERVAL": float(os.environ.get("DURABLE_TEST_PRUNE_INTERVAL", 60)),
    # Worker subprocesses started with DURABLE_TEST_POLL_ONLY poll instead of LISTEN.
    "LISTEN_DATABASE": False if os.environ.get("DURABLE_TEST_POLL_ONLY") else None,
    "ATOMIC_STEP_TIMEOUT": float(os.environ.get("DURABLE_TEST_ATOMIC_STEP_TIMEOUT", 30)),
}
# PostgreSQL: worker subprocesses started with DURABLE_TEST_APPLICATION_NAME show it in
# pg_stat_activity, so a test can terminate their connections and no one else's.
if os.environ.get("DURABLE_TEST_APPLICATION_NAME") and database["ENGINE"].endswith("postgresql"):
    database["OPTIONS"] = {"application_name": os.environ["DURABLE_TEST_APPLICATION_NAME"]}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_durable": {"handlers": ["console"], "level": "INFO"}},
}

# The trace tests: this process's spans go to the file the test reads (tests/otel.py).
if os.environ.get("DURABLE_TEST_OTEL_FILE"):
    from tests.otel import export_to

    export_to(os.environ["DURABLE_TEST_OTEL_FILE"])
