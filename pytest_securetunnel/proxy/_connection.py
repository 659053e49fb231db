"""The ``websockets`` server connection the proxy uses, with two additions.

1. The raw request head is held back until complete and screened first (size, request
   line, header lines, then ``websockets``' own parser), so that every malformed request
   gets a 400 carrying a ``channel-id``, at once, instead of a closed connection. What
   follows the head, and the client's end of stream, wait until the handshake is
   answered.
2. Each binary WebSocket frame, whole message or fragment, goes straight to a
   synchronous ``sink`` as it is parsed, instead of being reassembled and passed through
   the receive queue and a task switch: tunneling frames are independent of WebSocket
   boundaries, so the relay reads the frames' payloads as one byte stream. It then costs
   about what a bare ``websockets`` forwarder costs, holds no reassembled message, and
   the size limit applies to each WebSocket frame (``max_size=(None, frame limit)``).
   A text message calls ``on_text`` at its first frame; its fragments are discarded.
   Frames that arrive before the proxy attaches its sink (sent with the request) are
   held, in order, and handed over by :meth:`TunnelServerConnection.attach`.

Both need methods of ``ServerConnection`` that ``websockets`` does not document; they
are listed, and checked against the installed release, in :mod:`._ws_internals`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State

from pytest_securetunnel.protocol import MAX_WEBSOCKET_FRAME_SIZE

from ._handshake import MAX_REQUEST_SIZE, preflight
from ._ws_internals import transport_of

__all__ = ["ConnectionOwner", "TunnelServerConnection"]


class ConnectionOwner(Protocol):
    """What a :class:`TunnelServerConnection` asks of the proxy that owns it."""

    connections: set[TunnelServerConnection]

    def new_channel_id(self) -> str:
        """A fresh ``channel-id``."""

    def refuse_raw(self, conn: TunnelServerConnection, body: str) -> None:
        """Answer 400 with ``body`` and close."""

    def release_admission(self, conn: TunnelServerConnection) -> None:
        """Undo the admission of a handshake whose WebSocket never opened."""


class TunnelServerConnection(ServerConnection):
    """A server connection with a screened request head and a synchronous frame sink."""

    owner: ConnectionOwner
    channel_id: str = ""
    #: What admitted the handshake (the proxy core's record), until released.
    admission: object | None = None
    handler_started: bool = False
    #: Called with the payload of each binary frame, in order; ``None`` once closed.
    sink: Callable[[bytes], None] | None = None
    #: Called at the first frame of each text message.
    on_text: Callable[[], None] | None = None
    _head: bytearray | None = None
    _after_head: bytearray | None = None
    _eof_held: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register the connection and give it a channel id."""
        super().connection_made(transport)
        self.channel_id = self.owner.new_channel_id()
        self._head = bytearray()
        self._on_writable: list[Callable[[], None]] = []
        self._in_text = False
        self._early: list[bytes | None] = []
        self._early_size = 0
        self.sink = self._hold
        self.on_text = self._hold_text
        self.owner.connections.add(self)

    def data_received(self, data: bytes) -> None:
        """Buffer the request head, screen it, then hand everything to ``websockets``."""
        head = self._head
        if head is None:
            after = self._after_head
            if after is None:
                super().data_received(data)
            else:
                after += data
                if len(after) > MAX_WEBSOCKET_FRAME_SIZE:
                    transport_of(self).pause_reading()  # until the handshake is answered
            return
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) <= MAX_REQUEST_SIZE:
            # Incomplete: refuse at once what cannot become a valid request.
            body = preflight(bytes(head), complete=False)
            if body is not None:
                self._head = None
                self.owner.refuse_raw(self, body)
            return
        self._head = None
        body = preflight(bytes(head[: end + 4]) if end >= 0 else bytes(head))
        if body is not None:
            self.owner.refuse_raw(self, body)
            return
        # What follows the head waits for the answer: ``websockets`` would parse it as
        # frames at once, and a bad one would close the connection unanswered.
        self._after_head = head[end + 4 :]
        super().data_received(bytes(head[: end + 4]))

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio's signature
        """The client ended its stream: answer its request first, if it sent one.

        A request cut short is refused; for a whole one, the end of stream is held back
        until the handshake is answered (``websockets`` would drop the answer).
        """
        head = self._head
        if head:
            self._head = None
            body = preflight(bytes(head)) or "Invalid request: The request head is incomplete."
            self.owner.refuse_raw(self, body)
            return None
        if head is None and self.state is State.CONNECTING:
            self._eof_held = True
            return True  # keep the transport open to write the answer
        super().eof_received()
        return None

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """``websockets``' opening handshake, then what arrived meanwhile (data, end)."""
        try:
            await super().handshake(*args, **kwargs)
        finally:
            after, self._after_head = self._after_head, None
            if after is not None and self.state is State.OPEN:
                if after:
                    super().data_received(bytes(after))
                if len(after) > MAX_WEBSOCKET_FRAME_SIZE:
                    transport_of(self).resume_reading()
            if self._eof_held:
                self._eof_held = False
                super().eof_received()

    def process_event(self, event: Event) -> None:
        """Give data frames to :attr:`sink` and :attr:`on_text`; others as usual."""
        sink = self.sink
        if sink is not None and isinstance(event, Frame):
            opcode = event.opcode
            if opcode is Opcode.BINARY or (opcode is Opcode.CONT and not self._in_text):
                data = event.data
                sink(data if isinstance(data, bytes) else bytes(data))
                return
            if opcode is Opcode.TEXT or opcode is Opcode.CONT:
                self._in_text = not event.fin
                if opcode is Opcode.TEXT and self.on_text is not None:
                    self.on_text()
                return
        super().process_event(event)

    def _hold(self, data: bytes) -> None:
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > MAX_WEBSOCKET_FRAME_SIZE:
            transport_of(self).pause_reading()  # until attach() hands them over

    def _hold_text(self) -> None:
        self._early.append(None)

    def attach(self, sink: Callable[[bytes], None], on_text: Callable[[], None]) -> None:
        """Send frames to ``sink`` and text messages to ``on_text`` from now on.

        Frames held since the handshake go first, in order. ``sink`` may replace itself
        (set :attr:`sink`) while they are handed over; later ones go to the new sink.
        """
        early, self._early = self._early, []
        paused = self._early_size > MAX_WEBSOCKET_FRAME_SIZE
        self._early_size = 0
        self.sink, self.on_text = sink, on_text
        for item in early:
            current = self.sink
            if current is None:
                return
            if item is None:
                on_text()
            else:
                current(item)
        if paused and self.sink is not None:
            transport_of(self).resume_reading()

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the write buffer drains (or the connection is lost)."""
        self._on_writable.append(callback)

    def _writable(self) -> None:
        callbacks, self._on_writable = self._on_writable, []
        for callback in callbacks:
            callback()

    def resume_writing(self) -> None:
        """Flow control: the write buffer drained."""
        super().resume_writing()
        self._writable()

    def connection_lost(self, exc: Exception | None) -> None:
        """Release what waits on this connection; undo an admission that never opened."""
        super().connection_lost(exc)
        self.sink = None
        self._writable()
        self.owner.connections.discard(self)
        if self.admission is not None and not self.handler_started:
            self.owner.release_admission(self)
