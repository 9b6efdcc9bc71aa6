# settings.py
from datetime import timedelta

DURABLE = {
    # Keep completed runs two weeks, failed runs for ever; cancelled runs keep the
    # default (30 days).
    "RETENTION": {"completed": timedelta(days=14), "failed": None},
}
