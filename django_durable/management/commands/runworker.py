"""``manage.py runworker``: parse options, set up logging and signals, run the worker."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import autoreload

from ...conf import durable_settings
from ...event_loop import DATABASE_THREADS
from ...worker import DEFAULT_ASYNC_CONCURRENCY, Worker

logger = logging.getLogger("django_durable")

# Seconds past --grace a reload waits for the stopping worker to release its runs.
RELOAD_MARGIN = 5.0
VERBOSITY_LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.INFO, 3: logging.DEBUG}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = "Execute django_durable runs until stopped (SIGTERM or Ctrl-C)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="NAME",
            help="Queue to take runs from; repeat for several, or '*' for every queue "
            "(default: default).",
        )
        parser.add_argument(
            "--concurrency",
            type=positive_int,
            default=1,
            metavar="N",
            help="Runs executed at once, one thread and database connection each "
            "(default: %(default)s).",
        )
        parser.add_argument(
            "--async-concurrency",
            type=non_negative_int,
            default=DEFAULT_ASYNC_CONCURRENCY,
            metavar="N",
            help="Runs of async def jobs executed at once on the worker's event loop, "
            "beside the threads; their database work shares "
            f"{DATABASE_THREADS} connections. 0 runs them on the threads "
            "(default: %(default)s).",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Exit 0 once no runnable work is left instead of waiting for more.",
        )
        parser.add_argument(
            "--max-runs",
            type=positive_int,
            default=None,
            metavar="N",
            help="Exit 0 after executing N runs, e.g. to recycle the process (default: no limit).",
        )
        parser.add_argument(
            "--poll-interval",
            type=positive_float,
            default=None,
            metavar="SECONDS",
            help="Seconds between looks for work when idle "
            f"(default: DURABLE['POLL_INTERVAL'], now {durable_settings.POLL_INTERVAL}).",
        )
        parser.add_argument(
            "--grace",
            type=non_negative_float,
            default=30.0,
            metavar="SECONDS",
            help="On SIGTERM/SIGINT, seconds to let running jobs reach their next step "
            "boundary before their runs are released anyway (default: %(default)s).",
        )
        parser.add_argument(
            "--health-file",
            default=None,
            metavar="PATH",
            help="Touch PATH after every loop that reached the database (about every "
            "poll interval), for a liveness probe that checks its age (default: none).",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="Restart the worker when Python code changes, as runserver does; for "
            "development only (SIGTERM and Ctrl-C then end it without releasing its runs).",
        )
        parser.add_argument(
            "--worker-id",
            default=None,
            help="Name in leases and logs (default: host:pid:random).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._configure_logging(options["verbosity"])
        queues = options["queues"] or ["default"]
        health_file = options["health_file"]
        if health_file is not None and not Path(health_file).parent.is_dir():
            raise CommandError(f"--health-file {health_file}: its directory does not exist.")
        worker = Worker(
            queues=None if "*" in queues else queues,
            concurrency=options["concurrency"],
            async_concurrency=options["async_concurrency"],
            burst=options["burst"],
            max_runs=options["max_runs"],
            grace=options["grace"],
            worker_id=options["worker_id"],
            poll_interval=options["poll_interval"],
            health_file=health_file,
        )
        if not worker.jobs:
            raise CommandError("No jobs are registered: define @job functions in an app's jobs.py.")
        # A log line, not a system check: checks cannot see --concurrency, and a warning
        # that names this worker lands in the same log as its start line.
        if worker.storage.transactions_hold_database and worker.concurrency > 1:
            logger.warning(
                "worker=%s event=sqlite_concurrency concurrency=%s hint=%s",
                worker.worker_id,
                worker.concurrency,
                "SQLite allows one writer at a time, so more threads add contention, not "
                "speed: use --concurrency 1, or PostgreSQL",
            )
        if options["reload"]:
            if options["burst"] or options["max_runs"]:
                raise CommandError("--reload keeps the worker running: drop --burst/--max-runs.")
            autoreload.run_with_reloader(self._run_reloading, worker)
            return
        self._install_signal_handlers(worker)
        worker.run()
        self._exit_if_left_running(worker, 0)

    @staticmethod
    def _run_reloading(worker: Worker) -> None:
        """The worker under Django's autoreloader, which runs this in a thread and watches
        the code from the main one. A change stops the worker as SIGTERM does (running
        jobs get --grace to reach a step boundary, then their runs are released), so the
        new process takes them over at once rather than after their leases expire."""
        stopped = threading.Event()

        def stop_before_reloading(sender: Any, file_path: Path, **kwargs: Any) -> None:
            logger.info("worker=%s event=reloading changed=%s", worker.worker_id, file_path)
            worker.stop()
            stopped.wait(worker.grace + RELOAD_MARGIN)

        autoreload.file_changed.connect(stop_before_reloading, weak=False)
        try:
            worker.run()
            Command._exit_if_left_running(worker, 3)  # 3: the autoreloader starts anew
        finally:
            stopped.set()

    @staticmethod
    def _exit_if_left_running(worker: Worker, code: int) -> None:
        """A thread slot's thread is a daemon, but the thread a plain step of an async job
        runs on is asgiref's executor's, which the interpreter waits for at exit: when the
        grace period ended with executions still running, exit without waiting for them
        (their runs were released, their later writes are fenced out)."""
        if worker.left_running:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    @staticmethod
    def _install_signal_handlers(worker: Worker) -> None:
        log = logging.getLogger("django_durable")
        signalled = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal signalled
            name = signal.Signals(signum).name
            if signalled:
                log.warning("worker=%s event=exiting_now signal=%s", worker.worker_id, name)
                os._exit(1)  # a second signal: leases expire and other workers recover
            # Not here: the handler runs on the main thread between two bytecodes, possibly
            # while that thread holds the lock inside Event.wait(); Event.set() taken here
            # would then wait for it forever.
            signalled = True
            threading.Thread(target=stopping, args=(name,), name="durable-stop").start()

        def stopping(name: str) -> None:
            log.info(
                "worker=%s event=stopping signal=%s grace=%s", worker.worker_id, name, worker.grace
            )
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    @staticmethod
    def _configure_logging(verbosity: int) -> None:
        package_logger = logging.getLogger("django_durable")
        package_logger.setLevel(VERBOSITY_LEVELS.get(verbosity, logging.DEBUG))
        if not logging.getLogger().handlers and not package_logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
            )
            package_logger.addHandler(handler)
