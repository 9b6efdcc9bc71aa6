"""One test per system check id."""

from datetime import timedelta
from typing import Literal, get_type_hints

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from django_durable.checks import check_runworker_command, check_settings
from django_durable.conf import DEFAULTS, DurableSettings, durable_settings

pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")

SQLITE_OK = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": "x.sqlite3",
    "OPTIONS": {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL;",
    },
}


def ids(messages):
    return [message.id for message in messages]


def test_good_settings_raise_nothing(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"STALE_AFTER": 10}
    assert check_settings() == []


def test_e001_durable_must_be_a_dict(settings):
    settings.DURABLE = ["DATABASE"]
    assert ids(check_settings()) == ["django_durable.E001"]


def test_e002_unknown_keys(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"STALE_AFTRE": 10}
    (message,) = check_settings()
    assert message.id == "django_durable.E002" and "STALE_AFTRE" in message.msg


@pytest.mark.parametrize("alias", ["jobs", ["default"], None])
def test_e003_unknown_database_alias(settings, alias):
    settings.DURABLE = {"DATABASE": alias}
    assert ids(check_settings()) == ["django_durable.E003"]


@pytest.mark.parametrize(
    "durable",
    [
        {"STALE_AFTER": 0},
        {"STALE_AFTER": True},
        {"POLL_INTERVAL": "1"},
        {"POLL_INTERVAL": None},
        {"STEP_RETRY_SLEEP_LIMIT": -1.5},
        {"ATOMIC_STEP_TIMEOUT": 0},
        {"ATOMIC_STEP_TIMEOUT": "30"},
    ],
)
def test_e004_seconds_must_be_positive_numbers(settings, durable):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = durable
    (message,) = check_settings()
    assert message.id == "django_durable.E004" and next(iter(durable)) in message.msg


def test_none_means_defaults(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = None
    assert check_settings() == []


@pytest.mark.parametrize("recoveries", [-1, 1.5, "3", True, None])
def test_e008_max_recoveries_must_be_a_whole_number(settings, recoveries):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"MAX_RECOVERIES": recoveries}
    assert ids(check_settings()) == ["django_durable.E008"]
    settings.DURABLE = {"MAX_RECOVERIES": 0}
    assert check_settings() == []


@pytest.mark.parametrize(
    "durable",
    [
        {"LOG_BUFFER_SIZE": 0},
        {"LOG_BUFFER_SIZE": 2.5},
        {"MAX_PAYLOAD_BYTES": -1},
        {"MAX_PAYLOAD_BYTES": 1e6},
    ],
)
def test_e009_counts_must_be_whole_numbers_above_zero(settings, durable):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = durable
    (message,) = check_settings()
    assert message.id == "django_durable.E009" and next(iter(durable)) in message.msg


@pytest.mark.parametrize("heartbeat", [0, 30, 45, "5"])
def test_e005_heartbeat_interval_must_be_below_stale_after(settings, heartbeat):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"STALE_AFTER": 30, "HEARTBEAT_INTERVAL": heartbeat}
    assert ids(check_settings()) == ["django_durable.E005"]
    settings.DURABLE = {"STALE_AFTER": 30, "HEARTBEAT_INTERVAL": 5}
    assert check_settings() == []


def test_w006_mysql_needs_read_committed(settings):
    mysql = {"ENGINE": "django.db.backends.mysql", "NAME": "x"}
    settings.DURABLE = {}
    settings.DATABASES = {"default": {**mysql, "OPTIONS": {"isolation_level": "repeatable read"}}}
    assert ids(check_settings()) == ["django_durable.W006"]
    settings.DATABASES = {"default": mysql}  # Django's default is READ COMMITTED
    assert check_settings() == []


def test_e006_listen_database_must_be_an_alias(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    for listen in ("direct", True, ["default"]):
        settings.DURABLE = {"LISTEN_DATABASE": listen}
        assert ids(check_settings()) == ["django_durable.E006"]
    settings.DURABLE = {"LISTEN_DATABASE": False}
    assert check_settings() == []


def test_e007_prepare_statements_must_be_a_bool(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"PREPARE_STATEMENTS": "no"}
    assert ids(check_settings()) == ["django_durable.E007"]
    settings.DURABLE = {"PREPARE_STATEMENTS": False}
    assert check_settings() == []


def test_i001_another_alias_is_not_transactional_with_default(settings):
    settings.DATABASES = {"default": SQLITE_OK, "jobs": SQLITE_OK}
    settings.DURABLE = {"DATABASE": "jobs"}
    assert ids(check_settings()) == ["django_durable.I001"]


@pytest.mark.parametrize(
    ("missing", "check_id"),
    [
        ("transaction_mode", "django_durable.W001"),
        ("timeout", "django_durable.W002"),
        ("init_command", "django_durable.W003"),
    ],
)
def test_w001_to_w003_sqlite_options(settings, missing, check_id):
    options = {k: v for k, v in SQLITE_OK["OPTIONS"].items() if k != missing}
    settings.DATABASES = {"default": {**SQLITE_OK, "OPTIONS": options}}
    settings.DURABLE = {}
    assert ids(check_settings()) == [check_id]


TOKEN = "t" * 16


@pytest.mark.parametrize("token", ["short", "", 1234567890123456789, b"b" * 16])
def test_e011_metrics_token_is_a_long_enough_string(settings, token):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"METRICS_TOKEN": token}
    assert ids(check_settings()) == ["django_durable.E011"]
    settings.DURABLE = {"METRICS_TOKEN": TOKEN}
    assert check_settings() == []


@pytest.mark.parametrize("public", ["yes", 1, None])
def test_e012_metrics_public_is_a_bool(settings, public):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"METRICS_PUBLIC": public}
    assert ids(check_settings()) == ["django_durable.E012"]


def test_w007_metrics_public_makes_the_token_pointless(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"METRICS_PUBLIC": True, "METRICS_TOKEN": TOKEN}
    (message,) = check_settings()
    assert message.id == "django_durable.W007" and message.hint
    settings.DURABLE = {"METRICS_PUBLIC": True}
    assert check_settings() == []


def test_w004_another_apps_runworker_shadows_ours(monkeypatch):
    from django.core import management

    monkeypatch.setattr(management, "get_commands", lambda: {"runworker": "channels"})
    (message,) = check_runworker_command()
    assert message.id == "django_durable.W004" and "durable_worker" in message.hint
    monkeypatch.setattr(management, "get_commands", lambda: {"runworker": "django_durable"})
    assert check_runworker_command() == []


@pytest.mark.parametrize("option", [["--concurrency", "0"], ["--poll-interval", "-1"]])
def test_runworker_rejects_bad_options(option):
    with pytest.raises(CommandError):
        call_command("runworker", *option)


BAD_SHAPES = [
    {"STALE_AFTRE": 10},
    {"DATABASE": "jobs"},
    {"STALE_AFTER": 0},
    {"HEARTBEAT_INTERVAL": 0},
    {"LISTEN_DATABASE": "direct"},
    {"PREPARE_STATEMENTS": "no"},
    {"MAX_RECOVERIES": -1},
    {"LOG_BUFFER_SIZE": 0},
    {"METRICS_TOKEN": "short"},
    {"METRICS_PUBLIC": "yes"},
]


@pytest.mark.parametrize("durable", BAD_SHAPES)
def test_every_error_has_a_hint(settings, durable):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = durable
    (message,) = check_settings()
    assert message.is_serious() and message.hint


def test_every_setting_has_a_typed_property():
    hints = {
        name: get_type_hints(getattr(DurableSettings, name).fget)["return"] for name in DEFAULTS
    }
    assert hints == {
        "DATABASE": str,
        "STALE_AFTER": float,
        "HEARTBEAT_INTERVAL": float | None,
        "MAX_RECOVERIES": int,
        "MAX_PAYLOAD_BYTES": int,
        "POLL_INTERVAL": float,
        "LISTEN_DATABASE": str | Literal[False] | None,
        "STEP_RETRY_SLEEP_LIMIT": float,
        "PREPARE_STATEMENTS": bool,
        "LOG_BUFFER_SIZE": int,
        "RETENTION": dict[str, timedelta | None],
        "PRUNE_BATCH_SIZE": int,
        "PRUNE_INTERVAL": float,
        "ATOMIC_STEP_TIMEOUT": float,
        "METRICS_TOKEN": str | None,
        "METRICS_PUBLIC": bool,
    }


def test_properties_read_the_settings_on_every_access(settings):
    settings.DURABLE = {}
    assert durable_settings.STALE_AFTER == 30.0 and durable_settings.heartbeat_interval == 10.0
    assert durable_settings.LISTEN_DATABASE is None and durable_settings.DATABASE == "default"
    with override_settings(DURABLE={"STALE_AFTER": 9, "LISTEN_DATABASE": False}):
        assert durable_settings.STALE_AFTER == 9.0
        assert isinstance(durable_settings.STALE_AFTER, float)
        assert durable_settings.heartbeat_interval == 3.0
        assert durable_settings.LISTEN_DATABASE is False
    with override_settings(DURABLE={"STALE_AFTER": 9, "HEARTBEAT_INTERVAL": 2}):
        assert durable_settings.heartbeat_interval == 2.0
    assert durable_settings.STALE_AFTER == 30.0
