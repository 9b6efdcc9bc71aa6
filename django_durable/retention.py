"""How long finished runs are kept: ``DURABLE["RETENTION"]``, overridden per job.

A policy maps each finished status to a ``timedelta`` (runs that finished longer ago may
be pruned) or ``None`` (kept for ever). It is written as ``None`` (keep everything), one
duration for every status, or a dict naming some statuses; statuses a dict leaves out
keep the project's policy (for ``@job``) or the default (for the setting).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .durations import to_timedelta
from .status import RunStatus

FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)

Policy = dict[str, timedelta | None]
#: What ``@job(retention=...)`` and the setting accept.
RetentionSpec = timedelta | float | Mapping[str, timedelta | float | None] | None

DEFAULT: Policy = {
    RunStatus.COMPLETED: timedelta(days=7),
    RunStatus.FAILED: timedelta(days=30),
    RunStatus.CANCELLED: timedelta(days=30),
}


def parse(value: Any, parameter: str, *, base: Policy) -> Policy:
    """``value`` as a full policy over ``base``; ``TypeError``/``ValueError`` naming
    ``parameter`` and the bad part."""
    if value is None:
        return dict.fromkeys(FINISHED, None)
    if not isinstance(value, Mapping):
        return dict.fromkeys(FINISHED, to_timedelta(value, parameter, positive=True))
    unknown = sorted(str(key) for key in value if key not in FINISHED)
    if unknown:
        raise ValueError(
            f"{parameter} has unknown statuses {', '.join(unknown)}: "
            f"name some of {', '.join(FINISHED)}"
        )
    policy = dict(base)
    for status, keep in value.items():
        where = f"{parameter}[{status!r}]"
        policy[status] = None if keep is None else to_timedelta(keep, where, positive=True)
    return policy


def job_policy(job_retention: Any, project: Policy) -> Policy:
    """The policy of a job declared with ``@job(retention=...)``; ``None`` follows the
    project's."""
    if job_retention is None:
        return project
    return parse(job_retention, "retention", base=project)
