"""The storage conformance suite: the same scenarios against any ``Storage``.

Subclass :class:`StorageConformance` in a pytest module, mark it for database access
with transactions, and return the storage under test from ``make_storage``::

    @pytest.mark.django_db(transaction=True)
    class TestMyStorage(StorageConformance):
        def make_storage(self):
            return MyStorage()

A storage with transactions of its own (``InMemoryStorage``) needs no database mark and
overrides ``caller_transaction`` to return its own.

The scenarios are grouped in mixins, one module each; a new group is one more base of
``StorageConformance``.
"""

from __future__ import annotations

from .base import JOB, OTHER_JOB, ConformanceBase, new_run, step
from .checkpoints import CheckpointsAndFencing
from .enqueue_claim import EnqueueAndClaim
from .forks import ForkConformance
from .keys import ConcurrencyKeys
from .leases import LeasesAndRecovery
from .lifecycle import CancelRetryRestart
from .waits import WaitsEventsAndChildren

__all__ = ["JOB", "OTHER_JOB", "ConformanceBase", "StorageConformance", "new_run", "step"]


class StorageConformance(
    EnqueueAndClaim,
    CheckpointsAndFencing,
    LeasesAndRecovery,
    ConcurrencyKeys,
    WaitsEventsAndChildren,
    CancelRetryRestart,
    ForkConformance,
):
    """Every ``Storage`` method, its ordering, fencing and recovery rules."""
