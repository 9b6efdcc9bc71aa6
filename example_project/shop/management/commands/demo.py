"""``manage.py demo``: kill a worker in the middle of a run and watch another resume it.

1. Place three orders (one with a card the bank declines), each fulfilled by a run.
2. Start a worker (``manage.py runworker`` in a subprocess).
3. Kill it with SIGKILL while it is inside a step, before that step's checkpoint.
4. Start a second worker, which takes the run over once its lease has expired.
5. Request two refunds, approve one (as the shop page would), leave the other waiting.
6. Print a timeline of every step body that ran and in which worker, and fail (exit 1) if
   a step that had finished before the kill ran again.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Count

from django_durable import RunHandle, RunStatus, send_event
from django_durable.models import Run, Step
from shop.jobs import fulfil_order, refund_order
from shop.models import Order, StepExecution

ORDERS = [
    ("ada@example.com", "mechanical keyboard", 1, 12900),
    ("grace@example.com", "USB-C cable", 3, 2700),
    ("mallory@example.com", "gold-plated mouse", 1, 99900),  # the bank declines this card
]
ADMIN_USER, ADMIN_PASSWORD = "admin", "durable-demo"
# Seconds before a dead worker's runs may be taken over; short, so the demo does not wait.
STALE_AFTER = "3"
FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)
MANAGE = Path(settings.BASE_DIR) / "manage.py"


class Command(BaseCommand):
    help = "Crash a worker in the middle of a run and show another one resume it."

    def handle(self, *args, **options):
        self.t0 = time.time()
        self.timeline: list[tuple[float, str]] = []
        self.workers: dict[int, str] = {}
        self.create_admin_user()
        self.write(
            f"The demo's workers run with STALE_AFTER shortened to {STALE_AFTER} s (default 30 s),"
            "\nso a killed worker's run is taken over within seconds.\n"
        )

        orders = self.place_orders()
        first = self.start_worker()
        self.wait_for(
            lambda: StepExecution.objects.filter(step="create-shipment").exists(),
            "a worker to reach the create-shipment step",
        )
        interrupted = StepExecution.objects.filter(step="create-shipment").first()
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.time()
        self.note(killed_at, f"SIGKILL {self.workers[first.pid]} inside create-shipment")
        # With the worker dead the journal cannot change: this is what had finished.
        finished_at_kill = set(
            Step.objects.filter(kind="step", status__in=["completed", "failed"]).values_list(
                "run_id", "name"
            )
        )

        second = self.start_worker()
        self.wait_for(
            lambda: (
                not Run.objects.filter(
                    id__in=[o.id for o in orders],
                    status__in=[s for s in RunStatus if s not in FINISHED],
                ).exists()
            ),
            "every order's run to finish",
        )
        self.refunds(orders)
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        self.note(time.time(), f"SIGTERM {self.workers[second.pid]}: it stops cleanly")

        self.print_timeline(killed_at, finished_at_kill, interrupted)
        self.print_journal(interrupted.run_id, first.pid)
        self.verify(killed_at, finished_at_kill, interrupted)
        self.print_summary()

    def create_admin_user(self) -> None:
        User = get_user_model()
        user = User.objects.filter(username=ADMIN_USER).first()
        if user is None:
            User.objects.create_superuser(ADMIN_USER, "admin@shop.example", ADMIN_PASSWORD)
        else:
            user.set_password(ADMIN_PASSWORD)
            user.save(update_fields=["password"])

    def place_orders(self) -> list[RunHandle]:
        self.write("Placing three orders; each run is enqueued in the order's transaction.")
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
            self.write(f"  order {order.pk}: {quantity} x {item} for {email}, run {handle.id}")
            handles.append(handle)
        return handles

    def refunds(self, orders: list[RunHandle]) -> None:
        fulfilled = [o.kwargs["order_id"] for o in orders[:2]]
        approve, leave = (
            refund_order.enqueue(order_id=pk, reason="arrived scratched") for pk in fulfilled
        )
        self.note(time.time(), f"refunds requested for orders {fulfilled[0]} and {fulfilled[1]}")
        self.wait_for(
            lambda: (
                Run.objects.filter(id__in=[approve.id, leave.id], status="waiting").count() == 2
            ),
            "both refunds to wait for approval",
        )
        send_event(approve.id, "approval", {"approved": True, "by": ADMIN_USER})
        self.note(time.time(), f"approval sent to the refund of order {fulfilled[0]}")
        self.wait_for(lambda: get_status(approve.id) in FINISHED, "the approved refund")

    def start_worker(self) -> subprocess.Popen:
        number = len(self.workers) + 1
        log = Path(settings.BASE_DIR) / f"demo-worker-{number}.log"
        env = {**os.environ, "DURABLE_STALE_AFTER": STALE_AFTER}
        process = subprocess.Popen(
            [sys.executable, str(MANAGE), "runworker", "--queue", "*", "--poll-interval", "0.2"],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.workers[process.pid] = f"worker {number}"
        self.note(time.time(), f"worker {number} started (pid {process.pid}, log in {log.name})")
        return process

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise CommandError(f"gave up after {timeout:.0f}s waiting for {what}")
            time.sleep(0.1)

    def note(self, at: float, text: str) -> None:
        self.timeline.append((at, f"** {text}"))

    def print_timeline(self, killed_at: float, finished_at_kill: set, interrupted) -> None:
        labels = run_labels()
        lines = list(self.timeline)
        for execution in StepExecution.objects.order_by("at"):
            key = (execution.run_id, execution.step)
            note = ""
            if key in finished_at_kill and execution.at > killed_at:
                note = "  <- ERROR: this step had finished and ran again"
            elif key == (interrupted.run_id, interrupted.step):
                note = (
                    "  <- killed here, before its checkpoint"
                    if execution.at < killed_at
                    else "  <- resumed here: finished steps replayed, this one runs again"
                )
            worker = self.workers.get(execution.pid, f"pid {execution.pid}")
            text = f"{worker}: {labels[execution.run_id]:<22} {execution.step}{note}"
            lines.append((execution.at, text))
        self.write("\nTimeline (every execution of a step body, from the StepExecution table):")
        for at, text in sorted(lines):
            self.write(f"  {at - self.t0:6.2f}s  {text}")

    def print_journal(self, run_id, killed_pid: int) -> None:
        self.write(f"\nThe interrupted run's journal ({run_labels()[run_id]}, run {run_id}):")
        self.write(f"  {'#':>2}  {'operation':<34} {'status':<10} executions by worker")
        for step in Step.objects.filter(run_id=run_id).order_by("position"):
            by_worker = ""
            if step.kind == "step":
                counts = (
                    StepExecution.objects.filter(run_id=run_id, step=step.name)
                    .values_list("pid")
                    .annotate(n=Count("id"))
                    .order_by("pid")
                )
                by_worker = ", ".join(f"{self.workers.get(pid, pid)}: {n}" for pid, n in counts)
            operation = f"{step.kind} {step.name}".strip()
            self.write(f"  {step.position:>2}  {operation:<34} {step.status:<10} {by_worker}")
        self.write(
            "  (charge-card ran twice in worker 1: the flaky provider timed out once and the\n"
            "   step's retry policy tried again; worker 2 replayed it from the journal.)"
        )

    def verify(self, killed_at: float, finished_at_kill: set, interrupted) -> None:
        reran = [
            f"{e.step} of run {e.run_id}"
            for e in StepExecution.objects.filter(at__gt=killed_at)
            if (e.run_id, e.step) in finished_at_kill
        ]
        if reran:
            raise CommandError(f"finished steps ran again after the crash: {', '.join(reran)}")
        resumed = StepExecution.objects.filter(
            run_id=interrupted.run_id, step=interrupted.step, at__gt=killed_at
        ).exists()
        if not resumed or get_status(interrupted.run_id) != RunStatus.COMPLETED:
            raise CommandError("the interrupted run was not resumed and completed")
        self.write(
            f"\nCheck passed: none of the {len(finished_at_kill)} steps that had finished "
            "before the SIGKILL ran again; the interrupted step ran again and its run completed."
        )

    def print_summary(self) -> None:
        counts = dict(Run.objects.values_list("status").annotate(n=Count("id")))
        summary = ", ".join(f"{counts[s]} {s}" for s in RunStatus if s in counts)
        self.write(f"\nRuns in the database: {summary}.")
        self.write(
            "  The failed one is mallory's order: the bank declined the card, so the job put"
            "\n  the stock back and failed without retrying. The waiting one is a refund that"
            "\n  waits for approval: send it the event from the shop page or the admin."
        )
        self.write(
            "\nLook around in the admin and the shop page:\n"
            "    python3 dev.py serve     (runserver and a worker; or, in example_project/,\n"
            "                              python manage.py runserver and python manage.py"
            " runworker)\n"
            f"    http://127.0.0.1:8000/admin/   user {ADMIN_USER}, password {ADMIN_PASSWORD}\n"
            "    http://127.0.0.1:8000/         the shop page: place orders, approve refunds"
        )

    def write(self, line: str) -> None:
        self.stdout.write(line)


def get_status(run_id) -> str:
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


def run_labels() -> dict:
    """A readable name for every run: "order 1", "order 2 parcel 3", "refund of order 1"."""
    labels = {}
    for run_id, job_name, kwargs in Run.objects.values_list("id", "job_name", "kwargs"):
        order = kwargs.get("order_id")
        if job_name == "shop.pack_parcel":
            labels[run_id] = f"order {order} parcel {kwargs['parcel']}"
        elif job_name == "shop.refund_order":
            labels[run_id] = f"refund of order {order}"
        else:
            labels[run_id] = f"order {order}"
    return labels
