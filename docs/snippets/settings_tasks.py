# settings.py
INSTALLED_APPS = [
    ...,  # Django's apps and yours
    "django_durable",
]

TASKS = {
    "default": {
        "BACKEND": "django_durable.tasks.DurableBackend",
        # Queues tasks may name; runworker --queue picks which ones a worker serves.
        "QUEUES": ["default", "emails"],
    },
}
