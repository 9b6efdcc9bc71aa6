# settings.py
DATABASES = {
    # Web requests and workers' queries go through PgBouncer (transaction pooling).
    "default": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "PORT": 6432},
    # LISTEN needs a session of its own: a direct connection to PostgreSQL.
    "direct": {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "PORT": 5432},
}
DURABLE = {
    "LISTEN_DATABASE": "direct",
    # PgBouncer before 1.21 cannot keep server-side prepared statements.
    "PREPARE_STATEMENTS": False,
}
