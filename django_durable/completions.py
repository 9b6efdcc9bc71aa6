"""Completions committed together with the claims that replace them.

A slot thread that finishes a run hands its completion to the worker's main thread and
waits. The main thread takes the completions handed in so far, writes them and claims
the runs that take their slots, all in one transaction: one commit for many runs instead
of one per completion plus one per claim.

Each completion is still fenced by its own lease: one whose fence fails gets
``LeaseLost`` alone, and the others commit. When anything else fails, the transaction
wrote nothing, and every execution in it writes its completion itself, as it would
without batching; so does one whose main thread is busy elsewhere for longer than
``PATIENCE`` (a prune batch, a backoff after a database error, a stop).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .exceptions import LeaseLost
from .storage.base import Checkpoint, Lease, Storage

# How long a slot waits for the main thread to take its completion before writing it.
PATIENCE = 0.05


@dataclass(eq=False)
class Completion:
    lease: Lease
    output: Any
    checkpoint: Checkpoint
    done: threading.Event = field(default_factory=threading.Event)
    # Set before ``done``: None when committed, LeaseLost when its fence failed, and
    # ``_YOURSELF`` when the execution must write it on its own.
    outcome: BaseException | object | None = None


_YOURSELF = object()


class Completions:
    """The completions slot threads handed in and the main thread has not taken yet."""

    def __init__(self, storage: Storage, wake: Callable[[], None]) -> None:
        self.storage = storage
        self._wake = wake
        self._waiting: list[Completion] = []
        self._closed = False
        self._lock = threading.Lock()

    def storage_for_slots(self) -> Storage:
        """``storage`` whose ``complete`` hands the completion in."""
        return _HandingIn(self)

    def complete(self, lease: Lease, output: Any, checkpoint: Checkpoint) -> None:
        """Called by a slot thread: ``storage.complete``, committed by the main thread."""
        completion = Completion(lease, output, checkpoint)
        with self._lock:
            if self._closed:
                completion.outcome = _YOURSELF
            else:
                self._waiting.append(completion)
        if completion.outcome is None:
            self._wake()
            if not completion.done.wait(PATIENCE):
                with self._lock:
                    if completion in self._waiting:  # not taken: write it here
                        self._waiting.remove(completion)
                        completion.outcome = _YOURSELF
                        completion.done.set()
            completion.done.wait()  # taken: its transaction is short and always resolves
        if completion.outcome is _YOURSELF:
            self.storage.complete(lease, output, checkpoint)
        elif isinstance(completion.outcome, BaseException):
            raise completion.outcome

    def take(self) -> list[Completion]:
        """The completions handed in so far. Not waiting for more is what batches them:
        those that arrive while the main thread writes one batch make the next."""
        with self._lock:
            taken, self._waiting = self._waiting, []
        return taken

    def write(self, taken: Sequence[Completion]) -> list[LeaseLost | None]:
        """Write ``taken`` in the transaction already open; how each one's fence went.
        Any other error leaves the transaction to be rolled back."""
        outcomes: list[LeaseLost | None] = []
        for item in taken:
            try:
                self.storage.complete(item.lease, item.output, item.checkpoint)
            except LeaseLost as lost:  # its fence matched nothing: the transaction is fine
                outcomes.append(lost)
            else:
                outcomes.append(None)
        return outcomes

    def committed(self, taken: Sequence[Completion], outcomes: Sequence[LeaseLost | None]) -> None:
        for item, outcome in zip(taken, outcomes, strict=True):
            item.outcome = outcome
            item.done.set()

    def give_back(self, taken: Sequence[Completion]) -> None:
        """Nothing of ``taken`` was written: each execution writes its own."""
        for item in taken:
            item.outcome = _YOURSELF
            item.done.set()

    def close(self) -> None:
        """From now on every execution writes its completion itself."""
        with self._lock:
            self._closed = True
            waiting, self._waiting = self._waiting, []
        self.give_back(waiting)


class _HandingIn:
    """A storage whose ``complete`` goes through ``Completions``; everything else is the
    worker's storage."""

    def __init__(self, completions: Completions) -> None:
        self._completions = completions
        self.complete = completions.complete

    def __getattr__(self, name: str) -> Any:
        return getattr(self._completions.storage, name)
