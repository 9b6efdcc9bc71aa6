"""Tables: runs, their journal of steps, their logs and their event mailbox; schedules.

Only ``storage/orm.py`` writes to these tables; the admin and user code read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .claim_order import CLAIM_ORDER
from .conf import durable_settings
from .ids import uuid7
from .indexes import PartialIndexWhereSupported, UniqueWhereSupported
from .status import FINISHED_STATUSES, RunStatus, StepKind, StepStatus, TickStatus
from .storage.dbclock import DbNow


class RunQuerySet(models.QuerySet["Run"]):
    """Runs in the words operators use; times compared with ``DbNow()`` are the database's."""

    def pending(self) -> Self:
        return self.filter(status=RunStatus.PENDING)

    def running(self) -> Self:
        return self.filter(status=RunStatus.RUNNING)

    def waiting(self) -> Self:
        return self.filter(status=RunStatus.WAITING)

    def failed(self) -> Self:
        return self.filter(status=RunStatus.FAILED)

    def finished(self) -> Self:
        """Completed, failed or cancelled: nothing more will happen to them."""
        return self.filter(status__in=FINISHED_STATUSES)

    def unfinished(self) -> Self:
        return self.exclude(status__in=FINISHED_STATUSES)

    def due(self) -> Self:
        """Waiting runs whose wake time has come by the database's clock."""
        return self.waiting().filter(wake_at__lte=DbNow())

    def lease_expired(self) -> Self:
        """Running runs whose worker stopped heartbeating (by the database's clock)."""
        return self.running().filter(lease_expires_at__lt=DbNow())

    def finished_since(self, when: datetime) -> Self:
        return self.finished().filter(finished_at__gte=when)

    def failed_since(self, when: datetime) -> Self:
        return self.failed().filter(finished_at__gte=when)


class Run(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    job_name = models.CharField(max_length=255)
    queue_name = models.CharField(max_length=100, default="default")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    priority = models.SmallIntegerField(default=0)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    # One entry per failed attempt: {"attempt", "type", "message", "traceback"}.
    errors = models.JSONField(default=list, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    recoveries = models.PositiveIntegerField(default=0)
    # NULL, not "", means "no key": NULLs never collide in the unique constraint.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    concurrency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # Ordering key among runnable runs: the enqueue time, or the time the caller asked for.
    # The database's clock, not the enqueuing host's (whose clock may be off).
    run_after = models.DateTimeField(db_default=DbNow())
    # When a waiting run becomes runnable again (future run_after, retry backoff, sleep,
    # event timeout).
    wake_at = models.DateTimeField(null=True, blank=True)
    # What a waiting run waits for besides time: {"event": name} or {"children": [ids]}.
    # Senders of events and finishing children read it, under the run's row lock.
    waiting_for = models.JSONField(null=True, blank=True)
    lease_owner = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    deadline = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(null=True, blank=True)
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        db_index=False,  # durable_run_parent, without the roots
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The tick of a schedule that started this run (ctx.scheduled_at); None otherwise.
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # The enqueuer's OpenTelemetry context (W3C traceparent...), continued by the worker.
    trace_context = models.JSONField(null=True, blank=True, editable=False)
    # The run this one is a fork of (fork_run): an id, not a foreign key, so pruning the
    # original leaves its forks alone. Indexed (durable_run_forked_from) for the run
    # page's list of forks and pruning's check for unfinished forks.
    forked_from = models.UUIDField(null=True, blank=True, editable=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        constraints = [
            # Rows without a key (nearly all) cannot collide, so they stay out of the
            # index: fewer entries to write on every insert and status change.
            UniqueWhereSupported(
                fields=["job_name", "idempotency_key"],
                where=Q(idempotency_key__isnull=False),
                name="durable_run_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100), name="durable_run_priority"
            ),
        ]
        indexes = [
            # The claim query: WHERE status='pending' AND queue_name=... ORDER BY the
            # claim order (claim_order.py). Column order matches the ORDER BY exactly.
            PartialIndexWhereSupported(
                fields=["status", "queue_name", *CLAIM_ORDER],
                where=Q(status=RunStatus.PENDING),
                name="durable_run_claim",
            ),
            # The claim from every queue (runworker --queue '*'): the same order without
            # the queue, so the backlog is read in order rather than sorted.
            PartialIndexWhereSupported(
                fields=["status", *CLAIM_ORDER],
                where=Q(status=RunStatus.PENDING),
                name="durable_run_claim_any",
            ),
            # Promotion of waiting runs whose wake time has come.
            PartialIndexWhereSupported(
                fields=["status", "wake_at"],
                where=Q(status=RunStatus.WAITING),
                name="durable_run_wake",
            ),
            # The stale-lease sweep. (Every index here is paid for on each status change,
            # so the run table has only those the engine's queries use.)
            PartialIndexWhereSupported(
                fields=["status", "lease_expires_at"],
                where=Q(status=RunStatus.RUNNING),
                name="durable_run_lease",
            ),
            # The sweep that fails runs past their deadline (jobs with a timeout).
            PartialIndexWhereSupported(
                fields=["deadline"],
                where=Q(deadline__isnull=False),
                name="durable_run_deadline",
            ),
            # Admin and overview: runs of a status (failures of the last day, throughput
            # per minute) and counts by status, without a full-table scan.
            models.Index(fields=["status", "finished_at"], name="durable_run_status_finished"),
            # A run's children and forks. Only runs that have a parent (or an original)
            # are in them: a root's NULL would be one more entry written on each insert
            # and each status change of every run, for no query.
            PartialIndexWhereSupported(
                fields=["parent"], where=Q(parent__isnull=False), name="durable_run_parent"
            ),
            PartialIndexWhereSupported(
                fields=["forked_from"],
                where=Q(forked_from__isnull=False),
                name="durable_run_forked_from",
            ),
        ]
        permissions = [
            ("retry_run", "Can retry failed or cancelled runs"),
            ("cancel_run", "Can cancel runs"),
            ("restart_run", "Can restart runs from scratch"),
            ("send_event", "Can send events to runs"),
        ]

    def __str__(self) -> str:
        return f"{self.job_name} {self.id} ({self.status})"


# The rows that belong to a run (journal entries, logs, events, concurrency slots, schedule
# ticks) have no foreign key constraint in the database. Every writer of one holds a lock
# on the run row and refuses a finished run (the lease fence, send_event's FOR UPDATE, the
# claim, the transaction that inserts the run), and pruning deletes them with their run in
# one transaction, so the constraint guarded nothing; its check of every deleted run at
# COMMIT was half the time of a prune batch on PostgreSQL. Django's own deletes still
# cascade to them. Run.parent, between runs, keeps its constraint.
BELONGS_TO_RUN: dict[str, Any] = {"on_delete": models.CASCADE, "db_constraint": False}


class Step(models.Model):
    """One journal position of a run: a finished durable operation and its result."""

    id = models.BigAutoField(primary_key=True)
    # The unique (run, position) constraint already indexes run first.
    run = models.ForeignKey(Run, related_name="steps", db_index=False, **BELONGS_TO_RUN)
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=StepKind.choices, default=StepKind.STEP)
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=1)
    # The run attempt that wrote this entry; a failed last entry of an earlier attempt is
    # executed again by the next attempt.
    run_attempt = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="durable_step_position"),
        ]
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"#{self.position} {self.kind} {self.name} ({self.status})"


class RunLog(models.Model):
    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, related_name="logs", **BELONGS_TO_RUN)
    attempt = models.PositiveIntegerField(default=1)
    level = models.PositiveSmallIntegerField()
    message = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.message[:80]


class RunEvent(models.Model):
    """An event sent to a run; a mailbox entry until a wait consumes it."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(Run, related_name="events", db_index=False, **BELONGS_TO_RUN)
    name = models.CharField(max_length=255)
    payload = models.JSONField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["run", "name", "id"], name="durable_event_mailbox")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} -> {self.run_id}"


class ConcurrencySlot(models.Model):
    """A held slot of a concurrency key: the run that may execute while others wait.

    Written in the claim transaction and deleted when the run finishes, so runs sharing
    a key execute one at a time from claim to finish (waiting included). The slot
    number leaves room for a limit of N runs per key.
    """

    id = models.BigAutoField(primary_key=True)
    key = models.CharField(max_length=255)
    slot = models.PositiveSmallIntegerField(default=0)
    run = models.OneToOneField(Run, related_name="concurrency_slot", **BELONGS_TO_RUN)
    acquired_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "slot"], name="durable_concurrency_slot"),
        ]

    def __str__(self) -> str:
        return f"{self.key}#{self.slot} -> {self.run_id}"


class RunOverview(Run):
    """The admin's overview page; a proxy so it is listed on the admin index."""

    class Meta:
        proxy = True
        verbose_name = "overview"
        verbose_name_plural = "overview"
        default_permissions = ()


class WorkerQuerySet(models.QuerySet["Worker"]):
    def live(self) -> Self:
        """Workers seen within ``STALE_AFTER`` of the database's now: the rule leases use."""
        return self.filter(last_seen_at__gte=DbNow(-durable_settings.STALE_AFTER))


class Worker(models.Model):
    """A ``runworker`` process, registered at start and seen at every heartbeat.

    Lets the overview list live workers and the jobs they can execute; a row whose
    ``last_seen_at`` is older than ``STALE_AFTER`` belongs to a worker that died.
    """

    worker_id = models.CharField(max_length=255, primary_key=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(null=True, blank=True)  # None: every queue
    jobs = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # When this worker last finished a pruning pass (the overview shows the latest).
    pruned_at = models.DateTimeField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["worker_id"]

    def __str__(self) -> str:
        return self.worker_id


_now = timezone.now  # inside Schedule, "timezone" is a field


class Schedule(models.Model):
    """A cron schedule of a job: declared in code (``@schedule``) or made in the admin.

    Workers store code schedules at start, by name; one no longer in the code is marked
    ``removed_from_code`` and stops firing, but is kept. ``last_tick_at`` is the cursor:
    every tick up to it was started or skipped. ``next_fire_at`` is when a worker looks
    again; None asks the next worker to compute it (after an edit, say).
    """

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=255, unique=True)
    job_name = models.CharField(max_length=255)
    cron = models.CharField(max_length=255)
    timezone = models.CharField(max_length=64, default="UTC")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    overlap = models.CharField(
        max_length=8, choices=[("allow", "Allow"), ("skip", "Skip")], default="allow"
    )
    catchup = models.DurationField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    from_code = models.BooleanField(default=False, editable=False)
    removed_from_code = models.BooleanField(default=False, editable=False)
    last_tick_at = models.DateTimeField(null=True, blank=True, editable=False)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=_now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_fire_at"], name="durable_schedule_due")]
        permissions = [("run_schedule", "Can start a run of a schedule now")]

    def __str__(self) -> str:
        return self.name


class ScheduleTick(models.Model):
    """One tick of a schedule: the run it started, or why it was skipped.

    The unique (schedule, time) pair is what makes a tick start one run however many
    workers produce it; the row is inserted in the transaction that inserts the run.
    """

    id = models.BigAutoField(primary_key=True)
    # The unique (schedule, scheduled_at) constraint already indexes schedule first.
    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="ticks", db_index=False
    )
    scheduled_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=TickStatus.choices)
    run = models.OneToOneField(
        Run, null=True, blank=True, related_name="schedule_tick", **BELONGS_TO_RUN
    )
    reason = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "scheduled_at"], name="durable_schedule_tick"
            ),
        ]
        ordering = ["schedule", "scheduled_at"]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.scheduled_at:%Y-%m-%d %H:%M:%S} ({self.status})"
