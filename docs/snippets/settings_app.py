# settings.py
INSTALLED_APPS = [
    ...,  # Django's apps and yours
    "django_durable",
]

# Optional: every key and its default is in the settings reference.
DURABLE = {
    "STALE_AFTER": 30.0,
    "POLL_INTERVAL": 1.0,
}
