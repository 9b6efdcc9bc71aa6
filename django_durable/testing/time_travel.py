"""Time travel for tests: a three-day ``ctx.sleep`` passes in a call, not in three days.

Inside ``with time_travel() as clock:``, ``clock.advance(delta)`` moves time forward for
the runs ``run_until_idle()`` executes: durable sleeps, ``wait_for_event`` timeouts,
retry backoffs and ``run_after`` delays that fall due within ``delta`` become due at
once. The database's clock is not touched, so other code (the admin, another worker, the
test's own queries) still reads real time; the runs executed inside the block read the
shifted time wherever the engine consults the clock, which is how a journaled wake time
is seen to have passed. ``InMemoryStorage`` has a clock of its own: ``advance()`` moves it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

from ..durations import to_timedelta
from ..storage import get_storage
from ..storage.base import Storage
from .memory import InMemoryStorage

_active: list[TimeTravel] = []


class TimeTravel:
    """The shifted clock of one ``time_travel()`` block (see the module docstring)."""

    def __init__(self, storage: Storage) -> None:
        # Imported here: django_durable.testing may be imported before the apps are ready.
        from ..storage.orm import ORMStorage

        if not isinstance(storage, (ORMStorage, InMemoryStorage)):
            raise TypeError(
                f"time_travel() moves the clock of the library's own storages, not {storage!r}"
            )
        self.storage = storage
        self._offset = timedelta(0)

    @property
    def offset(self) -> timedelta:
        """How far the block has moved time so far."""
        return self._offset

    def advance(self, delta: timedelta | float) -> None:
        """Move time forward by ``delta`` (a timedelta or seconds): what falls due by then
        is run by the next ``run_until_idle()``."""
        step = to_timedelta(delta, "clock.advance()")
        self._offset += step
        if isinstance(self.storage, InMemoryStorage):
            self.storage.clock.advance(step)
            return
        from ..models import Run
        from ..storage.dbclock import DbNow
        from ..storage.orm import ORMStorage

        assert isinstance(self.storage, ORMStorage)
        alias = self.storage.alias
        horizon = self.storage.now() + self._offset
        runs = Run.objects.using(alias)
        # Due by the shifted clock: due by the database's now, where claims look. Only
        # times still ahead move: one already past keeps its place in the claim order.
        now = DbNow()
        runs.waiting().filter(wake_at__gt=now, wake_at__lte=horizon).update(wake_at=now)
        # A delayed run waits for its wake time, then is claimable from its run_after.
        runs.unfinished().filter(run_after__gt=now, run_after__lte=horizon).update(run_after=now)

    def storage_for_runs(self, storage: Storage) -> Storage:
        """``storage`` as the runs executed inside the block see it: its clock shifted
        when it reads the travelling database (``get_storage()`` builds a new object
        per call, so the alias says which)."""
        if isinstance(storage, InMemoryStorage) or not self._travels(storage):
            return storage
        return cast(Storage, _ShiftedClock(storage, self))

    def _travels(self, storage: Storage) -> bool:
        return storage is self.storage or (
            type(storage) is type(self.storage)
            and getattr(storage, "alias", None) == getattr(self.storage, "alias", None)
        )


class _ShiftedClock:
    """A storage whose ``now()`` is the travelled time; everything else is the storage's."""

    def __init__(self, storage: Storage, travel: TimeTravel) -> None:
        self._storage = storage
        self._travel = travel

    def now(self) -> datetime:
        return self._storage.now() + self._travel.offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


@contextmanager
def time_travel(storage: Storage | None = None) -> Iterator[TimeTravel]:
    """A block in which ``clock.advance(delta)`` moves time for the runs that
    ``run_until_idle()`` executes (``storage`` defaults to ``get_storage()``)."""
    travel = TimeTravel(storage or get_storage())
    _active.append(travel)
    try:
        yield travel
    finally:
        _active.remove(travel)


def storage_for_runs(storage: Storage) -> Storage:
    """``storage`` with the clock of the innermost ``time_travel()`` block, if any."""
    return _active[-1].storage_for_runs(storage) if _active else storage
