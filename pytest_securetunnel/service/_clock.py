"""The one clock of the fake.

Every read of tunnel time goes through :meth:`Clock.time`, which reads the wall clock
with ``time.time()`` on each call, so ``freezegun`` and ``time-machine`` move it, plus
an offset that :meth:`Clock.advance` and :meth:`Clock.set` move without either
library. Network I/O never waits on this clock.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
import weakref
from collections.abc import Callable

#: The earliest time the clock may read: 1970-01-01T00:00:00Z (epoch seconds).
MIN_TIME = 0.0
#: The latest time the clock may read: 9999-01-01T00:00:00Z, so that a tunnel's
#: lifetime and retention still end at a time ``datetime`` can represent.
MAX_TIME = 253_370_764_800.0


def _seconds(name: str, value: object) -> float:
    """``value`` as a finite number of seconds, or a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Clock: {name} must be a number; got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"Clock: {name} must be a finite number; got {value!r}")
    return number


def _check_range(what: str, target: float) -> None:
    if not MIN_TIME <= target <= MAX_TIME:
        raise ValueError(
            f"Clock: {what} would make the clock read {target!r} epoch seconds; it must stay "
            f"between {MIN_TIME:.0f} (1970-01-01T00:00:00Z) and {MAX_TIME:.0f} "
            "(9999-01-01T00:00:00Z)"
        )


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
        """Move the fake's time forward (never backward).

        Each amount must be a finite number and the clock must stay between
        :data:`MIN_TIME` and :data:`MAX_TIME`; otherwise ``ValueError`` (naming the value
        and the rule) and the clock is unchanged.
        """
        delta = (
            _seconds("advance(hours=...)", hours) * 3600.0
            + _seconds("advance(minutes=...)", minutes) * 60.0
            + _seconds("advance(seconds=...)", seconds)
        )
        if delta < 0:
            raise ValueError(f"Clock.advance() moves time forward only; got {delta} seconds")
        with self._lock:
            _check_range(f"advance() by {delta!r} seconds", time.time() + self._offset + delta)
            self._offset += delta
        self._moved()

    def set(self, when: _dt.datetime | float) -> None:
        """Make the fake's time read ``when`` (an aware ``datetime`` or epoch seconds).

        ``when`` must be finite and between :data:`MIN_TIME` and :data:`MAX_TIME`;
        otherwise ``ValueError`` (naming the value and the rule) and the clock is unchanged.
        """
        if isinstance(when, _dt.datetime):
            if when.tzinfo is None:
                raise ValueError(
                    f"Clock.set() needs an aware datetime (with tzinfo); got naive {when!r}"
                )
            target = when.timestamp()
        else:
            target = _seconds("set(when)", when)
        _check_range(f"set({when!r})", target)
        with self._lock:
            self._offset = target - time.time()
        self._moved()

    def reset(self) -> None:
        """Follow the wall clock again, with no offset."""
        with self._lock:
            self._offset = 0.0

    def __repr__(self) -> str:
        return f"<Clock now={self.now().isoformat()} offset={self._offset:+.3f}s>"
