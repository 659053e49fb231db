"""Real monotonic time for the toolkit's own event loops, whatever a test does to the clock.

freezegun freezes ``time.monotonic`` (and so asyncio's ``loop.time()``, which makes
``asyncio.sleep`` and every timer hang: spulec/freezegun#437); time-machine 2.13-2.x
did too (adamchainz/time-machine#387). Neither patches
``time.clock_gettime(CLOCK_MONOTONIC)``, and freezegun replaces module attributes that
are the real ``time.monotonic``, so the fallback keeps it inside a closure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def _make_real_monotonic() -> Callable[[], float]:
    clock_id = getattr(time, "CLOCK_MONOTONIC", None)
    if clock_id is not None:
        gettime = time.clock_gettime

        def monotonic() -> float:
            return gettime(clock_id)

        return monotonic
    captured = time.monotonic  # kept in a closure, out of reach of freezegun's module scan
    return lambda: captured()


real_monotonic = _make_real_monotonic()


class RealTimeEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose timers run on real monotonic time, even under freezegun."""

    def time(self) -> float:
        return real_monotonic()


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new :class:`RealTimeEventLoop`."""
    return RealTimeEventLoop()
