"""``manage.py durable_worker``: ``runworker`` under a name no other app uses (Channels)."""

from .runworker import Command as RunWorkerCommand


class Command(RunWorkerCommand):
    pass
