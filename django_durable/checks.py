"""System checks, each with a stable id and a hint (listed in docs/reference/settings.md).

``DurableConfig.ready`` registers them. Settings are read through ``durable_settings.raw``,
the accessor the typed properties in ``conf.py`` use, so what is checked is what is read.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from django.conf import settings
from django.core import checks

from .conf import DEFAULTS, durable_settings

# Settings in seconds: any int or float above zero.
SECONDS = (
    "STALE_AFTER",
    "POLL_INTERVAL",
    "STEP_RETRY_SLEEP_LIMIT",
    "ATOMIC_STEP_TIMEOUT",
    "PRUNE_INTERVAL",
)
# Settings that count something: a whole number above zero.
COUNTS = ("MAX_PAYLOAD_BYTES", "LOG_BUFFER_SIZE", "PRUNE_BATCH_SIZE")
# A metrics token shorter than this is guessable (secrets.token_urlsafe() gives 43).
MIN_TOKEN_LENGTH = 16


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    user = durable_settings.user()
    if not isinstance(user, dict):
        return [
            checks.Error(
                "settings.DURABLE must be a dict.",
                hint="For example DURABLE = {'DATABASE': 'default'}.",
                id="django_durable.E001",
            )
        ]
    errors: list[checks.CheckMessage] = []
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        errors.append(
            checks.Error(
                f"settings.DURABLE has unknown keys: {', '.join(map(str, unknown))}.",
                hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
                id="django_durable.E002",
            )
        )
    alias = durable_settings.raw("DATABASE")
    if not isinstance(alias, str) or alias not in settings.DATABASES:
        errors.append(
            checks.Error(
                f"DURABLE['DATABASE'] is {alias!r}, which is not in settings.DATABASES.",
                hint="Name one of your database aliases.",
                id="django_durable.E003",
            )
        )
        return errors
    listen = durable_settings.raw("LISTEN_DATABASE")
    if listen is not None and listen is not False and not _is_alias(listen):
        errors.append(
            checks.Error(
                f"DURABLE['LISTEN_DATABASE'] is {listen!r}, which is not in settings.DATABASES.",
                hint="Name a direct (not PgBouncer transaction-pooled) alias of the same "
                "PostgreSQL database, None to listen on DATABASE, or False to poll.",
                id="django_durable.E006",
            )
        )
    prepare = durable_settings.raw("PREPARE_STATEMENTS")
    if not isinstance(prepare, bool):
        errors.append(
            checks.Error(
                f"DURABLE['PREPARE_STATEMENTS'] is {prepare!r}, not True or False.",
                hint="False turns server-side prepared statements off; behind a pooler "
                "that cannot keep them they turn off by themselves.",
                id="django_durable.E007",
            )
        )
    if alias != "default":
        errors.append(
            checks.Info(
                f"django_durable stores runs in the {alias!r} database: enqueue and atomic "
                f"steps share a transaction with your code only on {alias!r}.",
                hint="Wrap enqueue in transaction.atomic(using=...) with that alias when it "
                "must commit together with your own writes.",
                id="django_durable.I001",
            )
        )
    for name in SECONDS:
        value = durable_settings.raw(name)
        if not _is_number(value) or value <= 0:
            errors.append(
                checks.Error(
                    f"DURABLE[{name!r}] must be a positive number of seconds, got {value!r}.",
                    hint=f"For example {DEFAULTS[name]!r}; leave it out for that default.",
                    id="django_durable.E004",
                )
            )
    recoveries = durable_settings.raw("MAX_RECOVERIES")
    if not _is_whole(recoveries) or recoveries < 0:
        errors.append(
            checks.Error(
                f"DURABLE['MAX_RECOVERIES'] must be a whole number >= 0, got {recoveries!r}.",
                hint="0 fails a run the first time its worker dies; the default is "
                f"{DEFAULTS['MAX_RECOVERIES']!r}.",
                id="django_durable.E008",
            )
        )
    for name in COUNTS:
        value = durable_settings.raw(name)
        if not _is_whole(value) or value <= 0:
            errors.append(
                checks.Error(
                    f"DURABLE[{name!r}] must be a whole number above 0, got {value!r}.",
                    hint=f"For example {DEFAULTS[name]!r}; leave it out for that default.",
                    id="django_durable.E009",
                )
            )
    heartbeat = durable_settings.raw("HEARTBEAT_INTERVAL")
    stale_after = durable_settings.raw("STALE_AFTER")
    if heartbeat is not None and (
        not _is_number(heartbeat)
        or heartbeat <= 0
        or (_is_number(stale_after) and heartbeat >= stale_after)
    ):
        errors.append(
            checks.Error(
                f"DURABLE['HEARTBEAT_INTERVAL'] must be a positive number below STALE_AFTER "
                f"({stale_after!r}), got {heartbeat!r}.",
                hint="Leave it unset to heartbeat every STALE_AFTER / 3 seconds.",
                id="django_durable.E005",
            )
        )
    try:
        _ = durable_settings.RETENTION  # parsing it is the check
    except (TypeError, ValueError) as error:
        errors.append(
            checks.Error(
                f"DURABLE['RETENTION'] is not a retention policy: {error}.",
                hint="None keeps every run; one duration (a timedelta or seconds) applies "
                "to every finished status; a dict names some of completed, failed, "
                "cancelled, each a duration or None (kept for ever).",
                id="django_durable.E010",
            )
        )
    errors += _check_metrics() + _check_sqlite(alias) + _check_mysql(alias)
    return errors


def _is_alias(value: object) -> bool:
    return isinstance(value, str) and value in settings.DATABASES


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_metrics() -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    token = durable_settings.raw("METRICS_TOKEN")
    if token is not None and (not isinstance(token, str) or len(token) < MIN_TOKEN_LENGTH):
        messages.append(
            checks.Error(
                f"DURABLE['METRICS_TOKEN'] must be None or a string of at least "
                f"{MIN_TOKEN_LENGTH} characters, got a {type(token).__name__}"
                + (f" of {len(token)}." if isinstance(token, str) else "."),
                hint="Generate one with python -c 'import secrets; "
                "print(secrets.token_urlsafe())' and read it from the environment.",
                id="django_durable.E011",
            )
        )
    public = durable_settings.raw("METRICS_PUBLIC")
    if not isinstance(public, bool):
        messages.append(
            checks.Error(
                f"DURABLE['METRICS_PUBLIC'] is {public!r}, not True or False.",
                hint="True serves the metrics view to anyone who can reach it.",
                id="django_durable.E012",
            )
        )
    elif public and token is not None:
        messages.append(
            checks.Warning(
                "DURABLE['METRICS_PUBLIC'] is True, so DURABLE['METRICS_TOKEN'] is never "
                "asked for.",
                hint="Remove one: the token to serve anyone, METRICS_PUBLIC to require the token.",
                id="django_durable.W007",
            )
        )
    return messages


def _check_mysql(alias: str) -> list[checks.CheckMessage]:
    database = settings.DATABASES[alias]
    if not database.get("ENGINE", "").endswith("mysql"):
        return []
    # Django's MySQL backend defaults to READ COMMITTED; REPEATABLE READ makes the claim
    # and idempotency lookups read stale snapshots and take gap locks.
    level = database.get("OPTIONS", {}).get("isolation_level", "read committed")
    if str(level).lower() != "read committed":
        return [
            checks.Warning(
                f"DATABASES[{alias!r}] runs MySQL/MariaDB at {level!r}; django_durable "
                "needs READ COMMITTED.",
                hint="Set OPTIONS = {'isolation_level': 'read committed', ...} or remove it.",
                id="django_durable.W006",
            )
        ]
    return []


def _check_sqlite(alias: str) -> list[checks.CheckMessage]:
    database = settings.DATABASES[alias]
    if not database.get("ENGINE", "").endswith("sqlite3"):
        return []
    options = database.get("OPTIONS", {})
    messages: list[checks.CheckMessage] = []
    # django_durable works at Django's stock settings (its own transactions begin
    # IMMEDIATE and are tried again on a lock timeout); these say what makes it better.
    if str(options.get("transaction_mode", "")).upper() != "IMMEDIATE":
        messages.append(
            checks.Warning(
                f"DATABASES[{alias!r}] is SQLite without transaction_mode IMMEDIATE: "
                "django_durable's own transactions take the write lock up front anyway, but "
                "your code's transactions that read before they write can fail with "
                "'database is locked' while a worker writes.",
                hint="Set OPTIONS = {'transaction_mode': 'IMMEDIATE', ...}.",
                id="django_durable.W001",
            )
        )
    if not options.get("timeout"):
        messages.append(
            checks.Warning(
                f"DATABASES[{alias!r}] is SQLite without a busy timeout, so Python's 5 s "
                "applies: a busy moment makes writers give up and django_durable try its "
                "writes again after a backoff, which costs throughput.",
                hint="Set OPTIONS = {'timeout': 20, ...} (seconds) so writers wait in line.",
                id="django_durable.W002",
            )
        )
    if "journal_mode=wal" not in str(options.get("init_command", "")).replace(" ", "").lower():
        messages.append(
            checks.Warning(
                f"DATABASES[{alias!r}] is SQLite without WAL: with the rollback journal, "
                "readers hold up each commit and a commit holds up every reader, so workers "
                "and web requests take turns.",
                hint="Set OPTIONS = {'init_command': 'PRAGMA journal_mode=WAL;', ...}.",
                id="django_durable.W003",
            )
        )
    return messages


def check_schedules(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Schedules declared in code are checked when declared; one that can never fire
    (a date that does not exist, such as February 30) is only worth a warning."""
    from datetime import UTC, datetime

    from .schedules import registered_schedules

    now = datetime.now(UTC)
    return [
        checks.Warning(
            f"the schedule {name!r} (cron {spec.cron.expression!r}) never fires: no date "
            "matches it.",
            hint="Check the day and month fields, or remove the @schedule.",
            obj=spec.job_name,
            id="django_durable.W008",
        )
        for name, spec in sorted(registered_schedules().items())
        if spec.cron.next_after(now) is None
    ]


def check_runworker_command(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.management import get_commands

    owner = get_commands().get("runworker")
    if owner not in (None, "django_durable"):
        return [
            checks.Warning(
                f"manage.py runworker runs the {owner!r} app's command (Django Channels has "
                "one), not django_durable's worker.",
                hint="List 'django_durable' before that app in INSTALLED_APPS, or run "
                "'manage.py durable_worker', which is the same command under another name.",
                id="django_durable.W004",
            )
        ]
    return []
