"""Stopping a search on SIGINT / SIGTERM without interrupting a storage write."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import optuna


class Interrupted(KeyboardInterrupt):
    """The search was stopped by a signal (``signum``: SIGINT or SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class InterruptGuard:
    """Ctrl-C (SIGINT) or SIGTERM that never lands in a storage write: the signal raises ``Interrupted`` at
    once only inside ``region()`` (pure computation: counting, measuring, scoring); anywhere else it is noted
    and raised at the next region, or the study stops after the current trial."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.interruptible = False
        self.signum: int | None = None

    def _handle(self, signum: int, _frame: object) -> None:
        self.signum = signum
        if self.interruptible:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM while the block runs (main thread only; elsewhere nothing changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def region(self, interruptible: bool = True) -> Iterator[None]:
        """A block a signal may interrupt (or, with ``interruptible=False``, one it must not)."""
        if interruptible and self.signum is not None:
            raise Interrupted(self.signum)
        outer, self.interruptible = self.interruptible, interruptible
        try:
            yield
        finally:
            self.interruptible = outer
        if outer and self.signum is not None:
            raise Interrupted(self.signum)

    def stop(self, study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: end the study after a trial during which a signal came."""
        if self.signum is not None:
            study.stop()
