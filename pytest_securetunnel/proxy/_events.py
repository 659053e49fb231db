"""The proxy's event log: what each side sent and received, connects, closes, refusals.

Thread-safe: the proxy's loop records, any thread reads. Waiting never sleeps: sync
waiters block on a :class:`threading.Condition`, async waiters await a future that the
recording thread resolves with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import Final, Literal

from pytest_securetunnel._realtime import real_monotonic
from pytest_securetunnel.protocol import MessageType, TunnelMessage

__all__ = ["EventKind", "EventLog", "EventMatch", "ProxyEvent"]


EventKind = Literal[
    "refused",
    "connected",
    "received",
    "sent",
    "dropped",
    "violation",
    "closing",
    "disconnected",
    "fault",
    "error",
]


@dataclasses.dataclass(frozen=True, slots=True)
class ProxyEvent:
    """One thing the proxy saw or did, as logged in ``TunnelProxy.events``.

    ``seq`` numbers events from 1 in the order they happened; ``TunnelProxy.wait_for``
    takes one as ``after=`` to match only later events. ``time`` is the proxy's real
    monotonic clock (not the fake's). ``channel_id`` is the connection's ``channel-id``
    header, the same for every event of one connection.

    Kinds (``kind``) and the fields they set:

    - ``refused``: a handshake was refused; ``code`` is the HTTP status (400), ``reason``
      the response body. ``mode`` is set when the request named a valid one.
    - ``connected``: a WebSocket connection opened; ``reason`` is the subprotocol.
    - ``received``: the client sent ``message`` (valid; relayed or dropped next).
    - ``sent``: the proxy wrote ``message`` to the client (relayed or generated).
    - ``dropped``: ``message`` was not delivered to this side (``mode``): it was not
      connected or was closing (the service keeps no buffer). ``reason`` says why.
    - ``violation``: the client broke a protocol rule; ``reason`` is the rule id,
      ``error`` the :class:`~pytest_securetunnel.protocol.ProtocolError`.
    - ``closing``: the proxy started closing the connection with ``code``/``reason``.
    - ``disconnected``: the connection ended; ``code``/``reason`` are those of the first
      close frame (1006 and ``""`` if the TCP connection was lost without one).
    - ``fault``: an injected fault was applied; ``reason`` names it.
    - ``error``: an unexpected error inside the proxy (a bug); ``error`` holds it.
    """

    seq: int
    kind: EventKind
    time: float
    tunnel_id: str | None = None
    mode: str | None = None
    channel_id: str | None = None
    message: TunnelMessage | None = None
    code: int | None = None
    reason: str = ""
    error: BaseException | None = None

    def __repr__(self) -> str:
        parts = [f"#{self.seq} {self.kind}"]
        if self.mode is not None:
            parts.append(self.mode)
        if self.tunnel_id is not None:
            parts.append(f"tunnel={self.tunnel_id}")
        if self.message is not None:
            parts.append(repr(self.message))
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.reason:
            parts.append(f"reason={self.reason!r}")
        return f"<ProxyEvent {' '.join(parts)}>"


#: What to wait for: an event kind, or a predicate on events.
EventMatch = EventKind | Callable[[ProxyEvent], bool]


def _matcher(
    match: EventMatch,
    tunnel_id: str | None,
    mode: str | None,
    message_type: MessageType | None,
    code: int | None,
) -> Callable[[ProxyEvent], bool]:
    def matches(event: ProxyEvent) -> bool:
        if isinstance(match, str):
            if event.kind != match:
                return False
        elif not match(event):
            return False
        if tunnel_id is not None and event.tunnel_id != tunnel_id:
            return False
        if mode is not None and event.mode != mode:
            return False
        if message_type is not None and (
            event.message is None or event.message.type != message_type
        ):
            return False
        return code is None or event.code == code

    return matches


def _describe(
    match: EventMatch,
    tunnel_id: str | None,
    mode: str | None,
    message_type: MessageType | None,
    code: int | None,
) -> str:
    parts = [f"kind={match!r}" if isinstance(match, str) else f"predicate={match!r}"]
    for name, value in (
        ("tunnel_id", tunnel_id),
        ("mode", mode),
        ("message_type", message_type),
        ("code", code),
    ):
        if value is not None:
            parts.append(f"{name}={value!r}")
    return ", ".join(parts)


_Row = tuple[
    int,
    EventKind,
    float,
    "str | None",
    "str | None",
    "str | None",
    "TunnelMessage | None",
    "int | None",
    str,
    "BaseException | None",
]


_NO_CLOSE: Final = (None, "", None)  # code, reason, error of a message event


@dataclasses.dataclass
class _AsyncWaiter:
    matches: Callable[[ProxyEvent], bool]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[ProxyEvent]


def _resolve(future: asyncio.Future[ProxyEvent], event: ProxyEvent | BaseException) -> None:
    if future.done():
        return
    if isinstance(event, BaseException):
        future.set_exception(event)
    else:
        future.set_result(event)


class EventLog:
    """A bounded, thread-safe log of :class:`ProxyEvent` with blocking and async waits.

    It keeps the latest events within two budgets: ``max_events`` events and
    ``max_event_bytes`` bytes of message payloads (``None``: unbounded). The byte budget
    keeps bulk transfers from pinning their payloads in memory.
    """

    def __init__(
        self, max_events: int | None = 10_000, max_event_bytes: int | None = 16 * 2**20
    ) -> None:
        """Create an empty log with these budgets."""
        self._events: collections.deque[_Row] = collections.deque()
        self._max_events = max_events
        self._max_bytes = max_event_bytes
        self._bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._seq = 0
        self._sync_waiters = 0
        self._async_waiters: list[_AsyncWaiter] = []

    @property
    def last_seq(self) -> int:
        """Sequence number of the latest event (0 before any); pass it as ``after=``."""
        return self._seq

    def record(
        self,
        kind: EventKind,
        *,
        tunnel_id: str | None = None,
        mode: str | None = None,
        channel_id: str | None = None,
        message: TunnelMessage | None = None,
        code: int | None = None,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None:
        """Append an event and wake the waiters it may satisfy."""
        with self._cond:
            self._seq += 1
            # A plain tuple: the relay records two events per message, so the
            # ProxyEvent is only built when someone reads it.
            row = (
                self._seq,
                kind,
                real_monotonic(),
                tunnel_id,
                mode,
                channel_id,
                message,
                code,
                reason,
                error,
            )
            events = self._events
            events.append(row)
            if message is not None:
                self._bytes += len(message.payload)
            if (self._max_events is not None and len(events) > self._max_events) or (
                self._max_bytes is not None and self._bytes > self._max_bytes
            ):
                self._evict()
            if self._sync_waiters:
                self._cond.notify_all()
            if self._async_waiters:
                self._wake_async(ProxyEvent(*row))

    def record_message(
        self,
        kind: EventKind,
        tunnel_id: str,
        mode: str,
        channel_id: str | None,
        message: TunnelMessage,
    ) -> None:
        """:meth:`record` for the relay's hot path: a message received, sent or dropped."""
        with self._cond:
            self._seq += 1
            row = (self._seq, kind, real_monotonic(), tunnel_id, mode, channel_id, message)
            events = self._events
            events.append(row + _NO_CLOSE)
            self._bytes += len(message.payload)
            if (self._max_events is not None and len(events) > self._max_events) or (
                self._max_bytes is not None and self._bytes > self._max_bytes
            ):
                self._evict()
            if self._sync_waiters:
                self._cond.notify_all()
            if self._async_waiters:
                self._wake_async(ProxyEvent(*row))

    def _evict(self) -> None:
        events = self._events
        while len(events) > 1 and (
            (self._max_events is not None and len(events) > self._max_events)
            or (self._max_bytes is not None and self._bytes > self._max_bytes)
        ):
            message = events.popleft()[6]
            if message is not None:
                self._bytes -= len(message.payload)

    def _wake_async(self, event: ProxyEvent) -> None:
        remaining = []
        for waiter in self._async_waiters:
            if waiter.future.done():
                continue
            try:
                hit: ProxyEvent | BaseException | None = event if waiter.matches(event) else None
            except Exception as exc:  # a user predicate failed: fail its waiter
                hit = exc
            if hit is None:
                remaining.append(waiter)
            else:
                with contextlib.suppress(RuntimeError):  # the waiter's loop is closed
                    waiter.loop.call_soon_threadsafe(_resolve, waiter.future, hit)
        self._async_waiters = remaining

    def snapshot(self) -> list[ProxyEvent]:
        """The retained events, oldest first."""
        with self._cond:
            return [ProxyEvent(*row) for row in self._events]

    def clear(self) -> None:
        """Forget the retained events (sequence numbers keep increasing)."""
        with self._cond:
            self._events.clear()
            self._bytes = 0

    def _newer_than(self, seq: int) -> list[ProxyEvent]:
        newer: list[ProxyEvent] = []
        for row in reversed(self._events):
            if row[0] <= seq:
                break
            newer.append(ProxyEvent(*row))
        newer.reverse()
        return newer

    def _timeout(self, what: str, timeout: float) -> TimeoutError:
        tail = [ProxyEvent(*row) for row in list(self._events)[-10:]]
        recent = "\n  ".join(repr(e) for e in tail) or "(none)"
        return TimeoutError(
            f"no proxy event matching {what} within {timeout} s; last events:\n  {recent}"
        )

    def wait_for(
        self,
        match: EventMatch,
        timeout: float = 5.0,
        *,
        after: int = 0,
        tunnel_id: str | None = None,
        mode: str | None = None,
        message_type: MessageType | None = None,
        code: int | None = None,
    ) -> ProxyEvent:
        """Block until an event with ``seq > after`` matches; return it.

        Raises :class:`TimeoutError` listing the last events if none matches in time.
        """
        matches = _matcher(match, tunnel_id, mode, message_type, code)
        deadline = real_monotonic() + timeout
        with self._cond:
            checked = after
            while True:
                for event in self._newer_than(checked):
                    if matches(event):
                        return event
                checked = max(checked, self._seq)
                remaining = deadline - real_monotonic()
                if remaining <= 0:
                    what = _describe(match, tunnel_id, mode, message_type, code)
                    raise self._timeout(what, timeout)
                self._sync_waiters += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._sync_waiters -= 1

    async def wait_for_async(
        self,
        match: EventMatch,
        timeout: float = 5.0,
        *,
        after: int = 0,
        tunnel_id: str | None = None,
        mode: str | None = None,
        message_type: MessageType | None = None,
        code: int | None = None,
    ) -> ProxyEvent:
        """Like :meth:`wait_for`, but awaits on the caller's event loop."""
        matches = _matcher(match, tunnel_id, mode, message_type, code)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ProxyEvent] = loop.create_future()
        with self._cond:
            for event in self._newer_than(after):
                if matches(event):
                    return event
            waiter = _AsyncWaiter(matches, loop, future)
            self._async_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            with self._cond:
                what = _describe(match, tunnel_id, mode, message_type, code)
                raise self._timeout(what, timeout) from None
        finally:
            with self._cond:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)
