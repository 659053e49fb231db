"""Whether a test library is faking the wall clock right now.

SigV4 signs the request time; AWS refuses a signature more than 5 minutes off with
``InvalidSignatureException`` (spulec/freezegun#188), so live mode must not run while
freezegun or time-machine is active.
"""

from __future__ import annotations

import sys
import time

#: How far ``time.time()`` may be from the OS clock before time counts as faked (seconds).
TOLERANCE_SECONDS = 2.0


def _os_wall_clock() -> float | None:
    clock_id = getattr(time, "CLOCK_REALTIME", None)
    if clock_id is None:
        return None
    return time.clock_gettime(clock_id)


def frozen_time_reason() -> str | None:
    """Why time is faked now (naming the library), or ``None`` if it is real."""
    freezegun = sys.modules.get("freezegun.api")
    if freezegun is not None and getattr(freezegun, "freeze_factories", None):
        return "freezegun is active (freeze_time / the freezer fixture)"
    time_machine = sys.modules.get("time_machine")
    hatch = getattr(time_machine, "escape_hatch", None)
    if hatch is not None and hatch.is_travelling():
        return "time-machine is travelling (time_machine.travel / the time_machine fixture)"
    wall = _os_wall_clock()
    if wall is not None and abs(time.time() - wall) > TOLERANCE_SECONDS:
        return (
            f"time.time() reads {time.time():.0f} but the OS clock reads {wall:.0f} "
            "(something patches time)"
        )
    return None
