"""The checks that need the database: the worker's SQLite warning and ``manage.py check``
(tests/unit/test_checks.py has one test per check id, with no database)."""

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_durable.checks import check_runworker_command, check_settings


@pytest.mark.django_db
def test_sqlite_with_several_threads_is_a_warning_log_line(caplog):
    # Formerly printed as "W005": a check cannot see --concurrency, so the worker logs it.
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the warning is about SQLite")
    call_command("runworker", "--burst", "--concurrency", "2", "--queue", "empty")
    (line,) = [r for r in caplog.records if "event=sqlite_concurrency" in r.getMessage()]
    assert line.levelname == "WARNING" and "concurrency=2" in line.getMessage()


# Django 6.1's model checks ask every database whether it supports JSONField.
@pytest.mark.django_db(databases="__all__")
def test_the_checks_are_registered(settings):
    # Through manage.py check, not by calling the function: proves ready() registered it.
    settings.DURABLE = {"STALE_AFTER": 0}
    with pytest.raises(SystemCheckError, match=r"django_durable\.E004"):
        call_command("check")
    settings.DURABLE = {"LOG_BUFFER_SIZE": 0, "MAX_RECOVERIES": -1}
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "django_durable.E008" in str(raised.value) and "E009" in str(raised.value)
    registered = checks.registry.registry.get_checks()
    assert check_settings in registered and check_runworker_command in registered
    # Registered once, though ready() ran and the module was imported again here.
    assert registered.count(check_settings) == 1
