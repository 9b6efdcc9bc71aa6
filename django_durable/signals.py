"""Lifecycle signals, sent after the change they announce is committed.

Every signal passes ``run`` (a :class:`~django_durable.RunHandle` for run signals, or the
run id for step signals); step signals also pass ``step`` (a ``StepRecord``). Tick
signals pass ``schedule`` (the schedule's id) and ``scheduled_at``; ``tick_started`` the
``run`` id it started, ``tick_skipped`` the ``reason``.
"""

from django.dispatch import Signal

run_enqueued = Signal()
run_started = Signal()
run_completed = Signal()
run_failed = Signal()
run_cancelled = Signal()
step_completed = Signal()
step_failed = Signal()
tick_started = Signal()
tick_skipped = Signal()
