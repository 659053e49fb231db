"""The receiving side of a tunnel client: its message log, its queue, and waiting."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from ..protocol import TunnelMessage
from ._records import MessageRecord

__all__ = ["Inbox"]

_T = TypeVar("_T")


class Inbox:
    """Messages of one client: :attr:`log` (everything) and a queue (what to deliver).

    Waiters re-check their condition whenever something is recorded or the inbox closes.
    """

    def __init__(self, closed_error: Callable[[str], Exception]) -> None:
        """``closed_error(detail)`` builds what a waiter raises once the inbox is closed."""
        self.log: list[MessageRecord] = []
        self.closed = False
        self._queue: deque[TunnelMessage] = deque()
        self._changed = asyncio.Event()
        self._closed_error = closed_error

    def record(self, record: MessageRecord, *, deliver: bool = False) -> None:
        """Append ``record`` to the log and, if ``deliver``, queue its message."""
        self.log.append(record)
        if deliver:
            self._queue.append(record.message)
        self._notify()

    def close(self) -> None:
        """Nothing more will arrive: wake every waiter."""
        self.closed = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def take(self, predicate: Callable[[TunnelMessage], bool]) -> TunnelMessage | None:
        """Remove and return the first queued message matching ``predicate``, if any."""
        for index, message in enumerate(self._queue):
            if predicate(message):
                del self._queue[index]
                return message
        return None

    def find(self, predicate: Callable[[TunnelMessage], bool], since: int) -> TunnelMessage | None:
        """The first received, not dropped, logged message from ``since`` that matches."""
        for record in self.log[since:]:
            received = record.direction == "received" and not record.dropped
            if received and predicate(record.message):
                return record.message
        return None

    async def wait(self, check: Callable[[], _T | None], timeout: float | None, what: str) -> _T:
        """Return ``check()`` once it is not ``None``.

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: never) and the
        ``closed_error`` once the inbox is closed and ``check()`` still gives nothing.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            result = check()
            if result is not None:
                return result
            if self.closed:
                raise self._closed_error(f"no {what} arrived before the close")
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                recent = [record.message for record in self.log[-3:]]
                raise TimeoutError(f"no {what} within {timeout} s; last messages: {recent}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue
