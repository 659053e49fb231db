"""Fakes for a whole module or session, routed so that the narrowest scope answers.

``mock_securetunneling`` blocks nest: the innermost answers, and they end in the reverse
order of their start. pytest may set up a session-scoped fixture while a module-scoped
one is active (the first test that asks for it comes later), yet tear the module's down
first. :class:`ScopedRoutes` keeps the scoped fakes in scope order on the routing stack
(session below module) whatever the order pytest starts them in, so both hold: the
narrower scope answers, and each one ends cleanly.
"""

from __future__ import annotations

from typing import Final

from pytest_securetunnel._router import _router
from pytest_securetunnel.mock import MockSecureTunneling
from pytest_securetunnel.service import SecureTunnelFake

__all__ = ["SCOPES", "ScopedRoutes"]

#: The scopes offered, widest first.
SCOPES: Final = ("session", "module")


class ScopedRoutes:
    """The active scoped fakes, widest scope first (lowest on the routing stack)."""

    def __init__(self) -> None:
        self._active: list[tuple[int, MockSecureTunneling]] = []

    def start(
        self, scope: str, fake: SecureTunnelFake, *, http: bool, real_sleep: bool = False
    ) -> MockSecureTunneling:
        """Route clients to ``fake`` below every active fake of a narrower scope."""
        rank = SCOPES.index(scope)
        above = [entry for entry in self._active if entry[0] > rank]
        self._lift(above, f"securetunnel_{scope}")
        mock = MockSecureTunneling(fake, http=http, real_sleep=real_sleep)
        try:
            mock.start()
            self._active.insert(len(self._active) - len(above), (rank, mock))
        finally:
            self._restore(above)
        return mock

    def stop(self, mock: MockSecureTunneling) -> None:
        """End ``mock``'s routing; raise what its ``stop()`` raises (subscriber errors)."""
        index = next(i for i, (_, active) in enumerate(self._active) if active is mock)
        above = self._active[index + 1 :]
        self._lift(above, "a scoped securetunnel fixture")
        del self._active[index]
        try:
            mock.stop()
        finally:
            self._restore(above)

    @staticmethod
    def _lift(entries: list[tuple[int, MockSecureTunneling]], who: str) -> None:
        """Take ``entries`` off the routing stack for a moment (top first)."""
        for _, mock in reversed(entries):
            assert mock.fake is not None
            try:
                _router.pop(mock.fake)
            except RuntimeError:
                raise RuntimeError(
                    f"{who} could not take its place below the narrower scoped fakes: a "
                    "mock_securetunneling() block started after them is still active. "
                    "Request securetunnel_session before starting that block."
                ) from None

    @staticmethod
    def _restore(entries: list[tuple[int, MockSecureTunneling]]) -> None:
        for _, mock in entries:
            assert mock.fake is not None
            _router.push(mock.fake, mock.http, mock.real_sleep)
