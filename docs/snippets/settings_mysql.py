# settings.py
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "shop",
        "USER": "shop",
        "HOST": "127.0.0.1",
        "OPTIONS": {"isolation_level": "read committed", "charset": "utf8mb4"},
    }
}
