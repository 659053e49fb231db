"""The ``websockets`` server connection the proxy uses, with two additions.

1. The raw request head is held back until complete and screened first (size, request
   line, header lines), so that every refusal is a 400 carrying a ``channel-id``.
2. Once the tunnel connection is set up, each complete binary WebSocket message goes
   straight to a synchronous ``sink`` as it is parsed, instead of through the receive
   queue and a task switch: the relay then costs about what a bare ``websockets``
   forwarder costs. Text and fragmented messages keep the ordinary path (from then on,
   so order is kept), and so do control frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from ._handshake import MAX_REQUEST_SIZE, preflight

if TYPE_CHECKING:
    from ._core import Admission

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
    admission: Admission | None = None
    handler_started: bool = False
    #: Called with each complete binary message, in order; ``None`` for the usual path.
    sink: Callable[[bytes], None] | None = None
    _head: bytearray | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Register the connection and give it a channel id."""
        super().connection_made(transport)
        self.channel_id = self.owner.new_channel_id()
        self._head = bytearray()
        self._on_writable: list[Callable[[], None]] = []
        self.owner.connections.add(self)

    def data_received(self, data: bytes) -> None:
        """Buffer the request head, screen it, then hand everything to ``websockets``."""
        head = self._head
        if head is None:
            super().data_received(data)
            return
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0 and len(head) <= MAX_REQUEST_SIZE:
            return
        self._head = None
        body = preflight(bytes(head[: end + 4]) if end >= 0 else bytes(head))
        if body is None:
            super().data_received(bytes(head))
        else:
            self.owner.refuse_raw(self, body)

    def process_event(self, event: Event) -> None:
        """Give complete binary messages to :attr:`sink`; everything else as usual."""
        sink = self.sink
        if sink is not None and isinstance(event, Frame):
            if event.opcode is Opcode.BINARY and event.fin:
                data = event.data
                sink(data if isinstance(data, bytes) else bytes(data))
                return
            if event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                self.sink = None  # a text or fragmented message: keep order from here on
        super().process_event(event)

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
