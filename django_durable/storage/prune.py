"""Deleting finished runs: whole families only, a batch per transaction.

A family is a root run (no parent) and all its descendants. It goes only when every
member is finished, in one of the statuses asked for, and finished longer ago than its
own retention (by its job and status); otherwise every member stays, so no run ever
loses its parent or a child it may still read. Roots are taken oldest first with
``SKIP LOCKED`` where the database has it, so workers pruning at once take different
families; members are locked parent before child, the order every other writer uses.
A batch is one transaction: an interrupted prune leaves whole families or nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import Q

from ..models import ConcurrencySlot, Run, RunEvent, RunLog, ScheduleTick, Step
from ..retention import Policy
from .own_writes import own_write

#: A retention policy per job name; jobs not in it follow ``default``.
JobPolicies = Mapping[str, Policy]


@dataclass
class Pruned:
    """What a prune deleted (or, in a dry run, would delete)."""

    runs: int = 0
    steps: int = 0
    logs: int = 0
    events: int = 0

    def add(self, other: Pruned) -> None:
        self.runs += other.runs
        self.steps += other.steps
        self.logs += other.logs
        self.events += other.events


@dataclass
class Pruning:
    """One pruning pass: what to prune, and where the last batch stopped."""

    default: Policy
    jobs: JobPolicies = field(default_factory=dict)
    statuses: Collection[str] = ("completed", "failed", "cancelled")
    job_name: str | None = None  # only families whose root is a run of this job
    # (finished_at, id) of the last root looked at: families kept are not looked at again.
    after: tuple[datetime, uuid.UUID] | None = None

    def cutoff(self, job_name: str, status: str, now: datetime) -> datetime | None:
        keep = self.jobs.get(job_name, self.default).get(status)
        return None if keep is None else now - keep

    def due(self, now: datetime) -> Q:
        """Finished runs past their retention, as a filter."""
        due = Q(pk__in=[])
        others = ~Q(job_name__in=list(self.jobs))
        for status in self.statuses:
            for which, policy in [
                (others, self.default),
                *((Q(job_name=name), policy) for name, policy in self.jobs.items()),
            ]:
                keep = policy.get(status)
                if keep is not None:
                    due |= which & Q(status=status, finished_at__lt=now - keep)
        return due

    def expired(self, member: dict[str, Any], now: datetime) -> bool:
        if member["status"] not in self.statuses or member["finished_at"] is None:
            return False
        cutoff = self.cutoff(member["job_name"], member["status"], now)
        return cutoff is not None and member["finished_at"] < cutoff


def prune_batch(
    alias: str, pruning: Pruning, *, now: datetime, batch_size: int, dry_run: bool = False
) -> tuple[Pruned, int]:
    """Delete up to ``batch_size`` expired families, in one transaction; return what went
    and how many roots were looked at (under ``batch_size``: none is left to look at)."""

    def batch() -> tuple[Pruned, list[dict[str, Any]]]:
        roots = _roots(alias, pruning, now=now, batch_size=batch_size, lock=not dry_run)
        families = _families(alias, roots, lock=not dry_run)
        doomed = [
            member["id"]
            for family in families.values()
            if all(pruning.expired(member, now) for member in family)
            for member in family
        ]
        return _delete(alias, doomed, dry_run=dry_run), roots

    pruned, roots = own_write(alias, batch)
    if roots:
        pruning.after = (roots[-1]["finished_at"], roots[-1]["id"])
    return pruned, len(roots)


def _roots(
    alias: str, pruning: Pruning, *, now: datetime, batch_size: int, lock: bool
) -> list[dict[str, Any]]:
    roots = Run.objects.using(alias).filter(pruning.due(now), parent_id=None)
    if pruning.job_name is not None:
        roots = roots.filter(job_name=pruning.job_name)
    if pruning.after is not None:
        finished_at, last_id = pruning.after
        roots = roots.filter(
            Q(finished_at__gt=finished_at) | Q(finished_at=finished_at, pk__gt=last_id)
        )
    roots = roots.order_by("finished_at", "pk")
    if lock and connections[alias].features.has_select_for_update_skip_locked:
        roots = roots.select_for_update(skip_locked=True)
    return list(roots.values(*MEMBER)[:batch_size])


MEMBER = ("id", "job_name", "status", "finished_at")


def _families(
    alias: str, roots: list[dict[str, Any]], *, lock: bool
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each root with its descendants, read (and locked) a generation at a time for all
    roots at once: a query per generation, not per family."""
    families = {root["id"]: [root] for root in roots}
    root_of = {root["id"]: root["id"] for root in roots}
    generation = list(root_of)
    while generation:
        children = Run.objects.using(alias).filter(parent_id__in=generation).order_by("pk")
        if lock and connections[alias].features.has_select_for_update:
            children = children.select_for_update()
        found = list(children.values(*MEMBER, "parent_id"))
        for child in found:
            root_of[child["id"]] = root_of[child["parent_id"]]
            families[root_of[child["id"]]].append(child)
        generation = [child["id"] for child in found]
    return families


def _delete(alias: str, ids: list[uuid.UUID], *, dry_run: bool) -> Pruned:
    if not ids:
        return Pruned()
    if dry_run:
        return Pruned(
            runs=len(ids),
            steps=Step.objects.using(alias).filter(run_id__in=ids).count(),
            logs=RunLog.objects.using(alias).filter(run_id__in=ids).count(),
            events=RunEvent.objects.using(alias).filter(run_id__in=ids).count(),
        )
    # Their journal, logs, events, key slots and schedule ticks go with them, in this
    # transaction. Each table is one DELETE: Django's cascade would load every run first.
    counts = [
        model._default_manager.using(alias).filter(run_id__in=ids)._raw_delete(alias)
        for model in (Step, RunLog, RunEvent, ConcurrencySlot, ScheduleTick)
    ]
    runs = Run.objects.using(alias).filter(pk__in=ids)
    runs.exclude(parent_id=None).update(parent=None)  # MariaDB checks each row's parent
    return Pruned(runs=runs._raw_delete(alias), steps=counts[0], logs=counts[1], events=counts[2])
