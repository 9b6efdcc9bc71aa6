"""Status and kind vocabularies shared by the models, the storage records and the engine."""

from django.db import models


class RunStatus(models.TextChoices):
    """A run's status; completed, failed and cancelled are final."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepStatus(models.TextChoices):
    """A journal position's status."""

    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    # A sleep, event wait or child wait that began and has not resolved yet.
    WAITING = "waiting", "Waiting"


class StepKind(models.TextChoices):
    """What a journal position holds; replay checks it along with the name."""

    STEP = "step", "Step"
    SLEEP = "sleep", "Sleep"
    EVENT = "event", "Wait for event"
    CHILDREN = "children", "Start children"
    WAIT_CHILDREN = "wait_children", "Wait for children"
    PATCH = "patch", "Patch marker"


class TickStatus(models.TextChoices):
    """What became of a schedule's tick."""

    STARTED = "started", "Started a run"
    SKIPPED = "skipped", "Skipped"
    # Started from the admin ("run now"), not by the cron.
    MANUAL = "manual", "Started by hand"
