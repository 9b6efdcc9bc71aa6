"""``fork_run`` on the ORM: the new run, its copy of the journal and of the mailbox, in
one transaction (the rules are in ``fork_plan.py``)."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from ..exceptions import RunNotFound
from ..models import Run, RunEvent, Step
from ..notify import announce
from .convert import step_record
from .fenced import STEP_COLUMNS
from .fork_plan import FromStep, consumed_flags, plan_fork, refuse_status, started_children
from .own_writes import own_transaction


def fork(
    alias: str,
    run_id: uuid.UUID,
    *,
    from_step: FromStep,
    args: list[Any],
    kwargs: dict[str, Any],
) -> Run:
    """Insert the fork of ``run_id`` and return its row; nothing is written on an error."""
    with own_transaction(alias):
        # Locked, so a retry or restart of the old run cannot change it meanwhile.
        old = Run.objects.using(alias).select_for_update().filter(pk=run_id).first()
        if old is None:
            raise RunNotFound(f"no run with id {run_id}")
        refuse_status(run_id, old.status)
        journal = [
            step_record(step)
            for step in Step.objects.using(alias).filter(run_id=run_id).order_by("position")
        ]
        children = started_children(journal)
        statuses = dict(
            Run.objects.using(alias).filter(pk__in=children).values_list("pk", "status")
        )
        plan = plan_fork(run_id, journal, from_step, statuses)
        new = Run(
            job_name=old.job_name,
            queue_name=old.queue_name,
            priority=old.priority,
            args=args,
            kwargs=kwargs,
            concurrency_key=old.concurrency_key,
            scheduled_at=old.scheduled_at,
            forked_from=old.pk,
        )
        new.save(using=alias, force_insert=True)
        Step.objects.using(alias).bulk_create(
            # The columns a checkpoint writes, from the same list.
            Step(run_id=new.pk, **{name: getattr(entry, name) for name in STEP_COLUMNS[1:]})
            for entry in plan.kept
        )
        events = list(RunEvent.objects.using(alias).filter(run_id=run_id).order_by("id"))
        flags = consumed_flags(plan, ((e.name, e.consumed_at is not None) for e in events))
        now = timezone.now()
        # Copies in the same order, so the fork's waits take them oldest first too.
        RunEvent.objects.using(alias).bulk_create(
            RunEvent(
                run_id=new.pk,
                name=event.name,
                payload=event.payload,
                consumed_at=(event.consumed_at or now) if kept else None,
                created_at=event.created_at,
            )
            for event, kept in zip(events, flags, strict=True)
        )
        # Read back what the database set (run_after from its clock).
        new = Run.objects.using(alias).get(pk=new.pk)
        announce(alias, [new.queue_name])
    return new
