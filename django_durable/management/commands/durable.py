"""``manage.py durable``: look at runs and act on them from a shell, as the admin does.

``list``, ``show`` and ``workers`` read; ``retry``, ``cancel``, ``restart``, ``fork`` and
``send-event`` act, under the same rules and with the same words as the admin's actions;
``prune`` is ``prune_runs``.
Each subcommand takes ``--json`` for scripts. Exit codes: 0 done, 1 some run was refused
or not found, 2 bad arguments.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count
from django.utils import timezone

from ...conf import durable_settings
from ...durations import parse_age
from ...exceptions import JobNotRegistered, RunFinished, RunNotFound
from ...handles import get_run, parse_run_id
from ...models import Run, RunLog, Step, Worker
from ...operations import cancel_run, fork_run, restart_run, retry_run, send_event
from ...operator_rules import RULES
from ...status import RunStatus
from .prune_runs import add_prune_arguments, prune, summary

LIST_COLUMNS = ("id", "job_name", "status", "queue_name", "attempt", "created_at", "finished_at")
OPERATIONS = {
    "retry": (retry_run, "retried"),
    "cancel": (cancel_run, "cancelled"),
    "restart": (restart_run, "restarted"),
}
BAD_ARGUMENTS = 2


def bad(message: str) -> CommandError:
    return CommandError(message, returncode=BAD_ARGUMENTS)


class Command(BaseCommand):
    help = (
        "List, show, retry, cancel, restart, fork runs, send them events, prune finished ones, "
        "list live workers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", required=True, metavar="subcommand")
        listing = commands.add_parser("list", help="Runs, newest first.")
        listing.add_argument("--status", help="Comma-separated statuses, e.g. failed,cancelled.")
        listing.add_argument("--job", help="Only runs of this job name.")
        listing.add_argument("--queue", help="Only runs of this queue.")
        listing.add_argument("--since", help="Only runs created within this age: 90s, 15m, 1h, 7d.")
        listing.add_argument("--limit", type=int, default=50, help="At most this many (50).")
        show = commands.add_parser("show", help="One run: journal, errors, logs, children.")
        show.add_argument("run_id")
        for name in OPERATIONS:
            act = commands.add_parser(name, help=f"{name.capitalize()} runs (as the admin does).")
            act.add_argument("run_ids", nargs="+", metavar="RUN_ID")
        fork = commands.add_parser(
            "fork", help="A new run keeping a finished run's journal before a step."
        )
        fork.add_argument("run_id")
        fork.add_argument(
            "--from-step",
            metavar="N|NAME",
            help="A journal position (a number) or an operation's name; default: the first "
            "failed or unfinished operation.",
        )
        fork.add_argument(
            "--args", dest="fork_args", metavar="JSON", help="A JSON list replacing the args."
        )
        fork.add_argument(
            "--kwargs",
            dest="fork_kwargs",
            metavar="JSON",
            help="A JSON object replacing the kwargs.",
        )
        event = commands.add_parser("send-event", help="Send an event to a run.")
        event.add_argument("run_id")
        event.add_argument("name")
        event.add_argument("payload", nargs="?", default="null", help="JSON (default: null).")
        commands.add_parser("workers", help="Live workers: id, host, pid, queues, busy slots.")
        add_prune_arguments(
            commands.add_parser("prune", help="Delete finished runs past their retention.")
        )
        for sub in commands.choices.values():
            sub.add_argument("--json", action="store_true", help="Print JSON for scripts.")

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        if subcommand == "list":
            self.emit(options, self.list_runs(options))
        elif subcommand == "show":
            self.emit(options, self.show_run(options["run_id"]))
        elif subcommand == "workers":
            self.emit(options, self.live_workers())
        elif subcommand == "send-event":
            self.send_event(options)
        elif subcommand == "prune":
            self.prune(options)
        elif subcommand == "fork":
            self.fork(options)
        else:
            self.act(subcommand, options)

    # -- reading -------------------------------------------------------------------

    def runs(self) -> Any:
        return Run.objects.using(durable_settings.DATABASE)

    def list_runs(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        runs = self.runs()
        if options["status"]:
            statuses = [status.strip() for status in options["status"].split(",")]
            unknown = [status for status in statuses if status not in RunStatus.values]
            if unknown:
                raise bad(
                    f"unknown status {', '.join(unknown)}: "
                    f"choose from {', '.join(RunStatus.values)}"
                )
            runs = runs.filter(status__in=statuses)
        if options["job"]:
            runs = runs.filter(job_name=options["job"])
        if options["queue"]:
            runs = runs.filter(queue_name=options["queue"])
        if options["since"]:
            try:
                age = parse_age(options["since"])
            except ValueError as error:
                raise bad(f"--since: {error}") from None
            runs = runs.filter(created_at__gte=timezone.now() - age)
        if options["limit"] < 1:
            raise bad(f"--limit must be 1 or more, got {options['limit']}")
        return list(runs.order_by("-created_at", "-id").values(*LIST_COLUMNS)[: options["limit"]])

    def show_run(self, run_id: str) -> dict[str, Any]:
        parsed = self.run_id(run_id)
        run = self.runs().filter(pk=parsed).first()
        if run is None:
            raise CommandError(f"no run with id {run_id}")
        fields = {f.attname: getattr(run, f.attname) for f in Run._meta.concrete_fields}
        steps = Step.objects.using(durable_settings.DATABASE).filter(run_id=parsed)
        logs = RunLog.objects.using(durable_settings.DATABASE).filter(run_id=parsed)
        return {
            **{name: value for name, value in fields.items() if not name.startswith("lease_")},
            "journal": list(
                steps.order_by("position").values(
                    "position", "kind", "name", "status", "result", "error", "attempts"
                )
            ),
            "logs": list(logs.order_by("id").values("attempt", "level", "message", "created_at")),
            "children": list(
                self.runs()
                .filter(parent_id=parsed)
                .order_by("created_at", "id")
                .values("id", "job_name", "status")
            ),
        }

    def live_workers(self) -> list[dict[str, Any]]:
        workers = Worker.objects.using(durable_settings.DATABASE).live()
        busy = dict(
            self.runs()
            .running()
            .exclude(lease_owner=None)
            .values("lease_owner")
            .annotate(count=Count("id"))
            .values_list("lease_owner", "count")
        )
        return [
            {**worker, "busy": busy.get(worker["worker_id"], 0)}
            for worker in workers.values(
                "worker_id",
                "hostname",
                "pid",
                "queues",
                "concurrency",
                "started_at",
                "last_seen_at",
            )
        ]

    # -- acting ----------------------------------------------------------------------

    def run_id(self, text: str) -> Any:
        try:
            return parse_run_id(text)
        except ValueError as error:
            raise bad(str(error)) from None

    def act(self, name: str, options: dict[str, Any]) -> None:
        operation, done = OPERATIONS[name]
        ids = [self.run_id(text) for text in options["run_ids"]]  # all parsed before any acts
        results = [self.apply(name, run_id, operation, done) for run_id in ids]
        self.report(options, results)

    def send_event(self, options: dict[str, Any]) -> None:
        run_id = self.run_id(options["run_id"])
        name = options["name"]
        try:
            payload = json.loads(options["payload"])
        except json.JSONDecodeError as error:
            raise bad(f"the payload is not valid JSON: {error}") from None

        def deliver(run_id: Any) -> None:
            try:
                send_event(run_id, name, payload)
            except RunFinished:
                raise
            except (TypeError, ValueError) as error:  # the name or the payload
                raise bad(str(error)) from None

        self.report(options, [self.apply("send_event", run_id, deliver, f"sent {name!r} to")])

    def fork(self, options: dict[str, Any]) -> None:
        run_id = self.run_id(options["run_id"])
        step = options["from_step"]
        from_step = int(step) if step is not None and step.lstrip("-").isdigit() else step
        # Not "args"/"kwargs" in options: BaseCommand.execute() takes those names.
        arguments = {
            name: parse_json(options[f"fork_{name}"], f"--{name}", kind)
            for name, kind in (("args", list), ("kwargs", dict))
            if options[f"fork_{name}"] is not None
        }
        forked: list[Any] = []

        def start(run_id: Any) -> None:
            try:
                forked.append(fork_run(run_id, from_step=from_step, **arguments))
            except (RunNotFound, JobNotRegistered):
                raise
            except (TypeError, ValueError) as error:  # from_step, the arguments, a child
                raise bad(str(error)) from None

        (result,) = [self.apply("fork", run_id, start, "forked")]
        if forked:
            fork = forked[0]
            kept = Step.objects.using(durable_settings.DATABASE).filter(run_id=fork.id).count()
            result |= {
                "fork": str(fork.id),
                "from_step": kept,
                "message": f"forked {run_id} from position {kept}: the fork is run {fork.id}",
            }
        self.report(options, [result])

    def prune(self, options: dict[str, Any]) -> None:
        # Progress lines go to stderr, so --json prints only the JSON.
        total, seconds = prune(options, self.stderr.write)
        if options["json"]:
            self.stdout.write(json.dumps({**asdict(total), "seconds": round(seconds, 3)}))
        else:
            self.stdout.write(summary(total, seconds, dry_run=options["dry_run"]))

    def apply(self, name: str, run_id: Any, operation: Any, done: str) -> dict[str, Any]:
        """Do one operation on one run if the admin's rule allows it; say what happened."""
        try:
            refusal = RULES[name].refusal(get_run(run_id).status)
            if refusal is None:
                operation(run_id)
        except RunNotFound:
            refusal = "no such run"
        except JobNotRegistered as error:
            refusal = str(error)
        except ValueError as error:  # its status changed since we looked
            refusal = str(error)
        if refusal:
            return {"id": str(run_id), "ok": False, "message": f"skipped {run_id}: {refusal}"}
        return {"id": str(run_id), "ok": True, "message": f"{done} {run_id}"}

    # -- output -------------------------------------------------------------------------

    def report(self, options: dict[str, Any], results: list[dict[str, Any]]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(results, indent=2))
        else:
            for result in results:
                style = self.style.SUCCESS if result["ok"] else self.style.WARNING
                self.stdout.write(style(result["message"]))
        refused = [result["message"] for result in results if not result["ok"]]
        if refused:
            reason = f": {refused[0]}" if len(refused) == 1 else ""
            raise CommandError(f"{len(refused)} of {len(results)} runs not done{reason}")

    def emit(self, options: dict[str, Any], data: Any) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, cls=DjangoJSONEncoder, indent=2))
        elif isinstance(data, dict):
            self.stdout.write(render_run(data))
        else:
            self.stdout.write(render_table(data))


def parse_json(value: str, option: str, kind: type) -> Any:
    """``value`` read as JSON of ``kind`` (list, dict); a bad-arguments error otherwise."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise bad(f"{option} is not valid JSON: {error}") from None
    if not isinstance(parsed, kind):
        wanted = "list" if kind is list else "object"
        raise bad(f"{option} must be a JSON {wanted}, got {value}")
    return parsed


def render_table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned columns under their names; "(none)" when there are none."""
    if not rows:
        return "(none)"
    names = list(rows[0])
    cells = [[text(row[name]) for name in names] for row in rows]
    widths = [max(len(name), *(len(line[i]) for line in cells)) for i, name in enumerate(names)]
    lines = [names, *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def render_run(run: dict[str, Any]) -> str:
    """One run for a person: its fields, then the journal, errors, logs and children."""
    sections = {key: run[key] for key in ("journal", "errors", "logs", "children")}
    lines = [f"{name}: {text(value)}" for name, value in run.items() if name not in sections]
    lines += ["", "journal:", render_table(sections["journal"])]
    for error in sections["errors"] or []:
        lines += ["", f"error in attempt {error.get('attempt')}:", str(error.get("traceback", ""))]
    lines += ["", "logs:", render_table(sections["logs"]), "", "children:"]
    lines.append(render_table(sections["children"]))
    return "\n".join(lines)


def text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, cls=DjangoJSONEncoder)
    if hasattr(value, "isoformat"):
        return timezone.localtime(value).isoformat(timespec="seconds")
    return str(value)
