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
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.models import Q

from ..models import ConcurrencySlot, Run, RunEvent, RunLog, ScheduleTick, Step
from ..retention import Policy
from .own_writes import own_write

if TYPE_CHECKING:
    from .orm import ORMStorage

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
    """One pruning pass: what to prune, and how far the walk of each status has come.

    Each status is walked on its own, oldest first along the ``(status, finished_at)``
    index, from where its last batch stopped: a batch reads an index range, never the
    families it kept before (an OR over statuses would make every batch read them all).
    """

    default: Policy
    jobs: JobPolicies = field(default_factory=dict)
    statuses: Collection[str] = ("completed", "failed", "cancelled")
    job_name: str | None = None  # only families whose root is a run of this job
    # Per status, the (finished_at, id) of the last root looked at.
    after: dict[str, tuple[datetime, uuid.UUID]] = field(default_factory=dict)
    walked: set[str] = field(default_factory=set)  # statuses with nothing left to look at

    @property
    def done(self) -> bool:
        return self.walked.issuperset(self.statuses)

    def cutoff(self, job_name: str, status: str, now: datetime) -> datetime | None:
        keep = self.jobs.get(job_name, self.default).get(status)
        return None if keep is None else now - keep

    def due(self, status: str, now: datetime) -> Q | None:
        """Runs in ``status`` past their retention, as a filter bounded by the latest
        cutoff (an index range); None when that status is kept forever."""
        others = ~Q(job_name__in=list(self.jobs)) if self.jobs else Q()
        cutoffs = [
            (which, now - keep)
            for which, policy in [
                (others, self.default),
                *((Q(job_name=name), policy) for name, policy in self.jobs.items()),
            ]
            if (keep := policy.get(status)) is not None
        ]
        if not cutoffs:
            return None
        latest = max(cutoff for _, cutoff in cutoffs)
        due = Q(pk__in=[])
        for which, cutoff in cutoffs:
            due |= which & Q(finished_at__lt=cutoff)
        return Q(status=status, finished_at__lt=latest) & due

    def expired(self, member: dict[str, Any], now: datetime) -> bool:
        if member["status"] not in self.statuses or member["finished_at"] is None:
            return False
        cutoff = self.cutoff(member["job_name"], member["status"], now)
        return cutoff is not None and member["finished_at"] < cutoff


def prune_batch(
    alias: str, pruning: Pruning, *, now: datetime, batch_size: int, dry_run: bool = False
) -> Pruned:
    """Delete up to ``batch_size`` expired families in one transaction, from the first
    status not yet walked; ``pruning.done`` says when the pass is over."""
    for status in pruning.statuses:
        if status in pruning.walked:
            continue
        due = pruning.due(status, now)
        if due is None:
            pruning.walked.add(status)
            continue
        return _prune_status(alias, pruning, status, due, now, batch_size, dry_run)
    return Pruned()


def _prune_status(
    alias: str,
    pruning: Pruning,
    status: str,
    due: Q,
    now: datetime,
    batch_size: int,
    dry_run: bool,
) -> Pruned:
    from . import storage_for  # the storage package imports this module's neighbours

    storage = storage_for(alias)

    def batch() -> tuple[Pruned, list[dict[str, Any]]]:
        roots = _roots(alias, pruning, status, due, batch_size=batch_size, lock=not dry_run)
        families = _families(storage, roots, lock=not dry_run)
        doomed = _without_unfinished_forks(
            storage,
            [
                family
                for family in families.values()
                if all(pruning.expired(member, now) for member in family)
            ],
        )
        ids = [member["id"] for family in doomed for member in family]
        nested = any(len(family) > 1 for family in doomed)
        return _delete(storage, ids, nested=nested, dry_run=dry_run), roots

    # The walk moves on only once the batch is committed: a retried or failed batch
    # is looked at again.
    pruned, roots = own_write(alias, batch)
    if roots:
        pruning.after[status] = (roots[-1]["finished_at"], roots[-1]["id"])
    if len(roots) < batch_size:
        pruning.walked.add(status)
    return pruned


def _roots(
    alias: str, pruning: Pruning, status: str, due: Q, *, batch_size: int, lock: bool
) -> list[dict[str, Any]]:
    roots = Run.objects.using(alias).filter(due, parent_id=None)
    if pruning.job_name is not None:
        roots = roots.filter(job_name=pruning.job_name)
    if status in pruning.after:
        finished_at, last_id = pruning.after[status]
        # The >= bound starts the index range here; the OR only breaks ties.
        roots = roots.filter(finished_at__gte=finished_at).filter(
            Q(finished_at__gt=finished_at) | Q(pk__gt=last_id)
        )
    roots = roots.order_by("finished_at", "pk")
    if lock and connections[alias].features.has_select_for_update_skip_locked:
        roots = roots.select_for_update(skip_locked=True)
    return list(roots.values(*MEMBER)[:batch_size])


MEMBER = ("id", "job_name", "status", "finished_at")


def _without_unfinished_forks(
    storage: ORMStorage, families: list[list[dict[str, Any]]]
) -> list[list[dict[str, Any]]]:
    """The families no unfinished fork started from: a fork may still wait for child
    runs of the run it was forked from, which go with that run's family."""
    ids = [member["id"] for family in families for member in family]
    if not ids:
        return families
    forked = set(
        Run.objects.using(storage.alias)
        .unfinished()
        .filter(forked_from__in=storage.id_list(ids))
        .values_list("forked_from", flat=True)
    )
    if not forked:
        return families
    return [family for family in families if not any(m["id"] in forked for m in family)]


def _families(
    storage: ORMStorage, roots: list[dict[str, Any]], *, lock: bool
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """Each root with its descendants, read (and locked) a generation at a time for all
    roots at once: a query per generation, not per family."""
    families = {root["id"]: [root] for root in roots}
    root_of = {root["id"]: root["id"] for root in roots}
    generation = list(root_of)
    while generation:
        children = (
            Run.objects.using(storage.alias)
            .filter(parent_id__in=storage.id_list(generation))
            .order_by("pk")
        )
        if lock and connections[storage.alias].features.has_select_for_update:
            children = children.select_for_update()
        found = list(children.values(*MEMBER, "parent_id"))
        for child in found:
            root_of[child["id"]] = root_of[child["parent_id"]]
            families[root_of[child["id"]]].append(child)
        generation = [child["id"] for child in found]
    return families


def _delete(storage: ORMStorage, ids: list[uuid.UUID], *, nested: bool, dry_run: bool) -> Pruned:
    if not ids:
        return Pruned()
    alias = storage.alias
    if dry_run:
        return Pruned(
            runs=len(ids),
            steps=Step.objects.using(alias).filter(run_id__in=ids).count(),
            logs=RunLog.objects.using(alias).filter(run_id__in=ids).count(),
            events=RunEvent.objects.using(alias).filter(run_id__in=ids).count(),
        )
    return storage.delete_runs(ids, nested=nested)


# Rows that belong to a run and go with it, in this order, before the run itself.
BELONGING = (Step, RunLog, RunEvent, ConcurrencySlot, ScheduleTick)


def delete_rows(alias: str, ids: list[uuid.UUID], *, nested: bool) -> Pruned:
    """Delete these runs and what belongs to them, in the caller's transaction. Each
    table is one DELETE: Django's cascade would load every run first."""
    counts = [
        model._default_manager.using(alias).filter(run_id__in=ids)._raw_delete(alias)
        for model in BELONGING
    ]
    runs = Run.objects.using(alias).filter(pk__in=ids)
    if nested:  # MariaDB checks each deleted row's parent, so children let go first
        runs.exclude(parent_id=None).update(parent=None)
    return Pruned(runs=runs._raw_delete(alias), steps=counts[0], logs=counts[1], events=counts[2])
