"""factory-boy factories for django_durable's models (for admin and query tests)."""

from __future__ import annotations

import factory
from django.utils import timezone

from ..models import Run, RunEvent, RunLog, Step
from ..status import RunStatus, StepKind, StepStatus


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    job_name = "example.jobs.noop"
    queue_name = "default"
    status = RunStatus.PENDING
    args = factory.LazyFunction(list)
    kwargs = factory.LazyFunction(dict)

    class Params:
        completed = factory.Trait(
            status=RunStatus.COMPLETED,
            output={"ok": True},
            started_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
        )
        failed = factory.Trait(
            status=RunStatus.FAILED,
            errors=factory.LazyAttribute(
                lambda run: [
                    {
                        "attempt": 1,
                        "type": "builtins.ValueError",
                        "message": "boom",
                        "traceback": "Traceback (most recent call last):\nValueError: boom\n",
                    }
                ]
            ),
            started_at=factory.LazyFunction(timezone.now),
            finished_at=factory.LazyFunction(timezone.now),
        )


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    run = factory.SubFactory(RunFactory)
    position = factory.Sequence(lambda n: n)
    kind = StepKind.STEP
    name = factory.Sequence(lambda n: f"step-{n}")
    status = StepStatus.COMPLETED
    result = None
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


class RunLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunLog

    run = factory.SubFactory(RunFactory)
    level = 20
    message = factory.Sequence(lambda n: f"log line {n}")


class RunEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RunEvent

    run = factory.SubFactory(RunFactory)
    name = "approval"
    payload = factory.LazyFunction(dict)
