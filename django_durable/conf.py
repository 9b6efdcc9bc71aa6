"""The ``DURABLE`` settings dict, one typed property per key.

Every property reads ``settings.DURABLE`` again, so ``override_settings`` works. The
values are trusted here: ``checks.py`` validates the same raw values (``durable_settings.raw``)
at startup, with one check id per bad shape.
"""

from __future__ import annotations

from typing import Literal, cast

from django.conf import settings

from .retention import DEFAULT as DEFAULT_RETENTION
from .retention import Policy, parse

DEFAULTS: dict[str, object] = {
    # Database alias holding every django_durable table. Enqueue joins the caller's
    # transaction only on this alias.
    "DATABASE": "default",
    # Seconds without a heartbeat after which a running run's lease expires and any live
    # worker may take it over.
    "STALE_AFTER": 30.0,
    # Seconds between heartbeats; None means STALE_AFTER / 3.
    "HEARTBEAT_INTERVAL": None,
    # Times a run may be taken over from a dead worker before it is failed.
    "MAX_RECOVERIES": 5,
    # Largest JSON payload (arguments, step results, outputs, events), in bytes.
    "MAX_PAYLOAD_BYTES": 1024 * 1024,
    # Seconds an idle worker waits before looking for work again.
    "POLL_INTERVAL": 1.0,
    # PostgreSQL: alias of a direct (session) connection for LISTEN, so idle workers wake
    # the moment runs are enqueued. None uses DATABASE; False polls every POLL_INTERVAL
    # (needed behind PgBouncer in transaction pooling mode without a direct alias).
    "LISTEN_DATABASE": None,
    # A step retry whose backoff is longer than this many seconds parks the run as
    # waiting (freeing its worker) instead of sleeping in place.
    "STEP_RETRY_SLEEP_LIMIT": 5.0,
    # PostgreSQL: run the claim and step checkpoints as server-side prepared statements
    # (parsed and planned once per connection). Off when the database OPTIONS set
    # psycopg's "prepare_threshold" to None. PgBouncer before 1.21 in transaction pooling
    # mode cannot keep prepared statements: set this to False behind it.
    "PREPARE_STATEMENTS": True,
    # Buffered ctx.log records written together once this many are waiting.
    "LOG_BUFFER_SIZE": 100,
    # How long finished runs are kept, per status; None keeps everything. See retention.py.
    "RETENTION": DEFAULT_RETENTION,
    # Pruning: root runs (with their families) deleted per transaction, and the seconds a
    # worker waits between pruning passes.
    "PRUNE_BATCH_SIZE": 500,
    "PRUNE_INTERVAL": 60.0,
    # Seconds an atomic step may hold its transaction. Past it the step fails with
    # AtomicStepTimeout; PostgreSQL and MariaDB also end the transaction of a worker
    # that froze inside it (idle or one statement that long), so its run is recovered.
    "ATOMIC_STEP_TIMEOUT": 30.0,
    # The metrics view (views.metrics): a bearer token a scraper may send instead of a
    # staff session, or True to serve anyone (a network the public cannot reach).
    "METRICS_TOKEN": None,
    "METRICS_PUBLIC": False,
}


class DurableSettings:
    """Typed access to ``settings.DURABLE`` merged over :data:`DEFAULTS`."""

    def user(self) -> object:
        """``settings.DURABLE`` as written (``None`` and absent mean ``{}``)."""
        return getattr(settings, "DURABLE", None) or {}

    def raw(self, name: str) -> object:
        """The value of one key as written, or its default; unchecked."""
        user = self.user()
        if isinstance(user, dict) and name in user:
            return user[name]
        return DEFAULTS[name]

    # Numbers are converted so an int where a float is meant (STALE_AFTER = 10) has the
    # type callers expect; bad shapes were reported by the checks before any use.
    def _float(self, name: str) -> float:
        return float(cast(float, self.raw(name)))

    def _int(self, name: str) -> int:
        return int(cast(int, self.raw(name)))

    @property
    def DATABASE(self) -> str:
        return cast(str, self.raw("DATABASE"))

    @property
    def STALE_AFTER(self) -> float:
        return self._float("STALE_AFTER")

    @property
    def HEARTBEAT_INTERVAL(self) -> float | None:
        value = self.raw("HEARTBEAT_INTERVAL")
        return None if value is None else float(cast(float, value))

    @property
    def MAX_RECOVERIES(self) -> int:
        return self._int("MAX_RECOVERIES")

    @property
    def MAX_PAYLOAD_BYTES(self) -> int:
        return self._int("MAX_PAYLOAD_BYTES")

    @property
    def POLL_INTERVAL(self) -> float:
        return self._float("POLL_INTERVAL")

    @property
    def LISTEN_DATABASE(self) -> str | Literal[False] | None:
        return cast("str | Literal[False] | None", self.raw("LISTEN_DATABASE"))

    @property
    def STEP_RETRY_SLEEP_LIMIT(self) -> float:
        return self._float("STEP_RETRY_SLEEP_LIMIT")

    @property
    def PREPARE_STATEMENTS(self) -> bool:
        return cast(bool, self.raw("PREPARE_STATEMENTS"))

    @property
    def LOG_BUFFER_SIZE(self) -> int:
        return self._int("LOG_BUFFER_SIZE")

    @property
    def RETENTION(self) -> Policy:
        """The project's policy, every finished status filled in (see ``retention.py``);
        ``TypeError``/``ValueError`` for a bad one (the system checks report it)."""
        return parse(self.raw("RETENTION"), 'DURABLE["RETENTION"]', base=DEFAULT_RETENTION)

    @property
    def PRUNE_BATCH_SIZE(self) -> int:
        return self._int("PRUNE_BATCH_SIZE")

    @property
    def PRUNE_INTERVAL(self) -> float:
        return self._float("PRUNE_INTERVAL")

    @property
    def ATOMIC_STEP_TIMEOUT(self) -> float:
        return self._float("ATOMIC_STEP_TIMEOUT")

    @property
    def METRICS_TOKEN(self) -> str | None:
        return cast("str | None", self.raw("METRICS_TOKEN"))

    @property
    def METRICS_PUBLIC(self) -> bool:
        return cast(bool, self.raw("METRICS_PUBLIC"))

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between heartbeats: ``HEARTBEAT_INTERVAL``, or ``STALE_AFTER / 3``."""
        return self.HEARTBEAT_INTERVAL or self.STALE_AFTER / 3


durable_settings = DurableSettings()
