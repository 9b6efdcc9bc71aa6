"""Lifecycle signals, sent after the change they announce is committed.

Every signal passes ``run`` (a :class:`~django_durable.RunHandle` for run signals, or the
run id for step signals); step signals also pass ``step`` (a ``StepRecord``). As with
Django's model signals, the sender is the class of what the signal is about:
``RunHandle`` for run signals, ``StepRecord`` for step signals. Tick signals (sender: the
worker's ``Scheduler``) pass
``schedule`` (the schedule's id) and ``scheduled_at``; ``tick_started`` the ``run`` id it
started, ``tick_skipped`` the ``reason``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.dispatch import Signal

from .handles import RunHandle
from .status import StepKind, StepStatus
from .storage.base import StepRecord, Storage

run_enqueued = Signal()
run_started = Signal()
run_completed = Signal()
run_failed = Signal()
run_cancelled = Signal()
step_completed = Signal()
step_failed = Signal()
tick_started = Signal()
tick_skipped = Signal()


def send_run_signal(signal: Signal, run_id: uuid.UUID, storage: Storage) -> None:
    """Send ``signal`` for the run as it is now stored."""
    # Building the handle costs a query, so only when someone listens.
    if signal.has_listeners():
        record = storage.get_run(run_id)
        if record is not None:
            send_handle_signal(signal, RunHandle.from_record(record))


def send_handle_signal(signal: Signal, handle: RunHandle) -> None:
    signal.send_robust(sender=RunHandle, run=handle)


def send_step_signals(run_id: uuid.UUID, steps: Iterable[StepRecord]) -> None:
    """Send the step signals of journal entries that were just committed."""
    for step in steps:
        if step.status == StepStatus.WAITING or step.kind == StepKind.PATCH:
            continue  # not an outcome yet, or no operation at all
        signal = step_completed if step.status == StepStatus.COMPLETED else step_failed
        if signal.has_listeners():
            signal.send_robust(sender=StepRecord, run=run_id, step=step)
