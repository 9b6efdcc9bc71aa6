"""``manage.py demo``: place three orders, fulfil them with a worker, show what happened."""

import json
import logging

from django.core.management.base import BaseCommand
from django.db import transaction

from django_durable import RunHandle
from django_durable.models import Run, RunLog, Step
from django_durable.worker import Worker
from shop.jobs import fulfil_order
from shop.models import Order

ORDERS = [
    ("ada@example.com", "mechanical keyboard", 1, 12900),
    ("grace@example.com", "USB-C cable", 3, 2700),
    ("linus@example.com", "laptop stand", 1, 4900),
]


class Command(BaseCommand):
    help = "Place three orders, fulfil them with a durable job, and print each run's journal."

    def handle(self, *args, **options):
        handles = self.place_orders()

        self.write(
            "\nRunning a worker in this process until no runnable work is left "
            "(its lines come from Python logging, set up in settings.LOGGING):"
        )
        Worker(queues=None, burst=True, concurrency=1).run()

        for handle in handles:
            handle.refresh()
            self.report(handle)

    def place_orders(self) -> list[RunHandle]:
        self.write("Placing orders; each enqueue commits together with its order.")
        handles = []
        for email, item, quantity, amount_cents in ORDERS:
            with transaction.atomic():
                order = Order.objects.create(
                    customer_email=email, item=item, quantity=quantity, amount_cents=amount_cents
                )
                # The idempotency key makes enqueueing twice (a double-clicked button, a
                # retried request) return the existing run instead of fulfilling twice.
                job = fulfil_order.using(idempotency_key=f"fulfil-order-{order.pk}")
                handle = job.enqueue(order_id=order.pk)
            self.write(f"  order {order.pk}: run {handle.id} (created={handle.created})")
            handles.append(handle)

        first = handles[0]
        again = fulfil_order.using(idempotency_key=f"fulfil-order-{first.kwargs['order_id']}")
        duplicate = again.enqueue(order_id=first.kwargs["order_id"])
        self.write(
            f"  order {first.kwargs['order_id']} again: run {duplicate.id} "
            f"(created={duplicate.created}; same run: {duplicate.id == first.id})"
        )
        return handles

    def report(self, handle: RunHandle) -> None:
        run = Run.objects.get(pk=handle.id)
        self.write(f"\nRun {handle.id} of {handle.job_name}({handle.kwargs})")
        self.write(f"  status:   {handle.status}")
        self.write(f"  attempt:  {handle.attempt}")
        if run.progress:
            progress = run.progress
            self.write(f"  progress: {progress['done']}/{progress['total']} {progress['message']}")

        self.write("  journal:")
        self.write(f"    {'#':>2}  {'step':<18} {'status':<10} {'attempts':>8}  duration")
        for step in Step.objects.filter(run_id=handle.id).order_by("position"):
            seconds = (step.finished_at - step.started_at).total_seconds()
            self.write(
                f"    {step.position:>2}  {step.name:<18} {step.status:<10} "
                f"{step.attempts:>8}  {seconds:.3f}s"
            )

        self.write("  logs:")
        for log in RunLog.objects.filter(run_id=handle.id).order_by("id"):
            self.write(f"    {logging.getLevelName(log.level):<7} {log.message}")

        if handle.error:
            self.write(f"  error:    {handle.error['type']}: {handle.error['message']}")
        self.write(f"  output:   {json.dumps(handle.output)}")
        order = Order.objects.get(pk=handle.kwargs["order_id"])
        self.write(f"  order:    {order.status} (the Order row the atomic steps updated)")

    def write(self, line: str) -> None:
        self.stdout.write(line)
