# settings.py
from datetime import timedelta

from django_durable import RetryPolicy

TASKS = {
    "default": {
        "BACKEND": "django_durable.tasks.DurableBackend",
        "OPTIONS": {
            # Run-level options a @task cannot express, per task path.
            "TASKS": {
                "shop.tasks.send_thanks": {
                    "retry": RetryPolicy(max_attempts=5, initial_delay=timedelta(minutes=1)),
                    "timeout": timedelta(minutes=2),
                },
            },
        },
    },
}
