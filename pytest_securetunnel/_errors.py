"""The root of every exception pytest-securetunnel raises, and the shape of background errors.

This module imports nothing, so both cores (``service``, ``protocol``) and every adapter
can derive their errors from :class:`SecureTunnelError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

__all__ = ["BackgroundError", "SecureTunnelError"]


class SecureTunnelError(Exception):
    """Base class of every exception raised by pytest-securetunnel.

    ``except SecureTunnelError`` catches them all. Errors that also mean something more
    general keep that base too: :class:`~pytest_securetunnel.UnknownRegionError` is a
    ``ValueError``, the real-call guard's ``RealCallBlocked`` a ``RuntimeError``, and so on.
    """


class BackgroundError(SecureTunnelError):
    """Errors that happened inside a component's own threads or tasks, raised in the caller's.

    A server, proxy or broker records what goes wrong where no caller can see it and
    raises it from ``check()``, ``stop()`` or the end of its ``with`` block.
    ``errors`` lists them; the first is also the ``__cause__``.
    """

    #: What the errors happened in, as the message names it.
    component: ClassVar[str] = "pytest-securetunnel"
    #: Why they are reported (the message's closing words).
    why: ClassVar[str] = "a bug: please report it"

    def __init__(self, errors: Sequence[BaseException]) -> None:
        """Wrap the recorded ``errors``."""
        self.errors = list(errors)
        listed = "\n".join(self.describe(e) for e in self.errors)
        super().__init__(
            f"{len(self.errors)} unexpected error(s) inside {self.component} "
            f"({self.why}):\n{listed}"
        )

    def describe(self, error: BaseException) -> str:
        """One line of the message: ``error``'s type and text."""
        return f"  {type(error).__name__}: {error}"
