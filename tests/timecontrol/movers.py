"""Moving time with each library the fake honours, for the time-control tests."""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from typing import Any

import freezegun
import time_machine

from pytest_securetunnel import SecureTunnelFake


class Mover:
    """Puts time at ``origin`` with one library (``kind``: ``clock``, ``freezegun``,
    ``freezegun-tick``, ``freezegun-nested``, ``pytest-freezer``, ``time-machine``),
    then moves it forward or back."""

    def __init__(self, kind: str, fake: SecureTunnelFake, freezer: Any, origin: dt.datetime):
        self.kind, self.fake, self.freezer, self.origin = kind, fake, freezer, origin
        self.stack = ExitStack()
        self.controller: Any = None

    def start(self) -> None:
        if self.kind == "clock":
            self.fake.clock.set(self.origin)
        elif self.kind in ("freezegun", "freezegun-nested"):
            self.controller = self.stack.enter_context(freezegun.freeze_time(self.origin))
        elif self.kind == "freezegun-tick":
            self.controller = self.stack.enter_context(
                freezegun.freeze_time(self.origin, tick=True)
            )
        elif self.kind == "pytest-freezer":
            self.freezer.move_to(self.origin)
        else:
            self.controller = self.stack.enter_context(time_machine.travel(self.origin, tick=False))

    def move(self, delta: dt.timedelta) -> None:
        """Forward by ``delta`` (from the origin, for libraries that set a moment)."""
        if self.kind == "clock":
            self.fake.clock.advance(seconds=delta.total_seconds())
        elif self.kind == "freezegun":
            self.controller.move_to(self.origin + delta)
        elif self.kind == "freezegun-tick":
            self.controller.tick(delta)
        elif self.kind == "pytest-freezer":
            self.freezer.move_to(self.origin + delta)
        else:
            self.controller.shift(delta)

    def to(self, when: dt.datetime) -> None:
        """To the moment ``when``, forward or back."""
        if self.kind == "clock":
            self.fake.clock.set(when)
        elif self.kind == "freezegun":
            self.controller.move_to(when)
        elif self.kind == "freezegun-nested":
            self.stack.enter_context(freezegun.freeze_time(when))  # a later freeze_time
        elif self.kind == "pytest-freezer":
            self.freezer.move_to(when)
        else:
            self.controller.move_to(when)

    def stop(self) -> None:
        self.stack.close()


def open_tunnel(client: Any, minutes: int = 10) -> dict[str, Any]:
    """Open a tunnel with service SSH and a lifetime of ``minutes``."""
    return dict(
        client.open_tunnel(
            destinationConfig={"services": ["SSH"]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": minutes},
        )
    )
