"""The ``DURABLE`` settings dict, read lazily so ``override_settings`` works."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
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
}


class DurableSettings:
    """Attribute access to ``settings.DURABLE`` merged over :data:`DEFAULTS`."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django_durable setting {name!r}")
        user = getattr(settings, "DURABLE", None) or {}
        return user.get(name, DEFAULTS[name])

    @property
    def heartbeat_interval(self) -> float:
        return float(self.HEARTBEAT_INTERVAL or self.STALE_AFTER / 3)


durable_settings = DurableSettings()
