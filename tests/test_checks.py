"""One test per system check id."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from django_durable.checks import check_runworker_command, check_settings

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


def test_e003_unknown_database_alias(settings):
    settings.DURABLE = {"DATABASE": "jobs"}
    assert ids(check_settings()) == ["django_durable.E003"]


def test_e004_non_positive_numbers(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = {"STALE_AFTER": 0, "POLL_INTERVAL": "1"}
    assert ids(check_settings()) == ["django_durable.E004", "django_durable.E004"]


def test_none_means_defaults(settings):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = None
    assert check_settings() == []


@pytest.mark.parametrize(
    "durable", [{"MAX_RECOVERIES": -1}, {"MAX_RECOVERIES": 1.5}, {"LOG_BUFFER_SIZE": 0}]
)
def test_e004_other_numbers(settings, durable):
    settings.DATABASES = {"default": SQLITE_OK}
    settings.DURABLE = durable
    assert ids(check_settings()) == ["django_durable.E004"]


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
    settings.DURABLE = {"LISTEN_DATABASE": "direct"}
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


@pytest.mark.django_db
def test_w005_sqlite_with_several_threads_is_warned(capsys, settings):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("W005 is about SQLite")
    call_command("runworker", "--burst", "--concurrency", "2", "--queue", "empty")
    assert "django_durable.W005" in capsys.readouterr().err
