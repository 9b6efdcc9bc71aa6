"""Where the admin reads: the ``DURABLE["DATABASE"]`` alias, which storage writes.

The default manager would read the default database, which holds no runs when
django_durable lives on another alias. Related managers (``run.steps``) follow the
alias of the run they hang from.
"""

from __future__ import annotations

from django.db.models import QuerySet

from ..conf import durable_settings
from ..models import Run, RunQuerySet, Worker


def runs() -> RunQuerySet:
    return Run.objects.using(durable_settings.DATABASE)


def workers() -> QuerySet[Worker]:
    return Worker.objects.using(durable_settings.DATABASE)
