"""The one clock of the fake.

Every read of tunnel time goes through :meth:`Clock.time`, which reads the wall clock
with ``time.time()`` on each call, so ``freezegun`` and ``time-machine`` move it, plus
an offset that :meth:`Clock.advance` and :meth:`Clock.set` move without either
library. Network I/O never waits on this clock.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time
import weakref
from collections.abc import Callable


class Clock:
    """Wall-clock time for tunnels, movable by tests.

    >>> clock = Clock()
    >>> before = clock.now()
    >>> clock.advance(minutes=5)
    >>> (clock.now() - before).total_seconds() >= 300
    True
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._observers: list[weakref.WeakMethod[Callable[[], None]]] = []

    def subscribe(self, method: Callable[[], None]) -> None:
        """Call the bound ``method`` after each :meth:`advance` or :meth:`set` (held weakly)."""
        self._observers.append(weakref.WeakMethod(method))

    def _moved(self) -> None:
        for ref in list(self._observers):
            method = ref()
            if method is None:
                self._observers.remove(ref)
            else:
                method()

    def time(self) -> float:
        """Seconds since the epoch, as the fake sees them."""
        return time.time() + self._offset

    def now(self) -> _dt.datetime:
        """The fake's time as an aware UTC ``datetime``."""
        return _dt.datetime.fromtimestamp(self.time(), _dt.timezone.utc)

    def advance(self, *, minutes: float = 0.0, seconds: float = 0.0, hours: float = 0.0) -> None:
        """Move the fake's time forward (never backward)."""
        delta = hours * 3600.0 + minutes * 60.0 + seconds
        if delta < 0:
            raise ValueError(f"Clock.advance() moves time forward only; got {delta} seconds")
        with self._lock:
            self._offset += delta
        self._moved()

    def set(self, when: _dt.datetime | float) -> None:
        """Make the fake's time read ``when`` (an aware ``datetime`` or epoch seconds)."""
        if isinstance(when, _dt.datetime):
            if when.tzinfo is None:
                raise ValueError(
                    f"Clock.set() needs an aware datetime (with tzinfo); got naive {when!r}"
                )
            target = when.timestamp()
        else:
            target = float(when)
        with self._lock:
            self._offset = target - time.time()
        self._moved()

    def reset(self) -> None:
        """Follow the wall clock again, with no offset."""
        with self._lock:
            self._offset = 0.0

    def __repr__(self) -> str:
        return f"<Clock now={self.now().isoformat()} offset={self._offset:+.3f}s>"
