"""Local TCP connections of a :class:`LocalProxy` and the services they belong to."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Final

from ..protocol import MAX_PAYLOAD_SIZE, TunnelMessage

__all__ = ["CLOSE_TIMEOUT", "Link", "Service"]

#: Seconds a closing TCP connection may take to flush before it is aborted.
CLOSE_TIMEOUT: Final = 2.0


@dataclasses.dataclass(eq=False)
class Link:
    """One local TCP connection carried over the tunnel as (stream id, connection id).

    ``connection_id`` is 1 when the connection ids are not used on the wire
    (``use_connection_ids`` false: V1/V2, or a V3 client whose peer speaks V2).
    ``service_id`` is the service id on the wire: the one the stream was started with.
    """

    service: Service
    service_id: str
    stream_id: int
    connection_id: int
    use_connection_ids: bool
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ended: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """Key of the link in :attr:`Service.links`."""
        return self.stream_id, self.connection_id

    def data_message(self, payload: bytes) -> TunnelMessage:
        """A DATA message carrying ``payload`` for this link."""
        connection_id = self.connection_id if self.use_connection_ids else 0
        return TunnelMessage.data(self.stream_id, payload, self.service_id, connection_id)

    def reset_message(self) -> TunnelMessage:
        """The message that tells the peer this connection ended.

        V3 guide: ConnectionReset with the stream and connection id; V1/V2: StreamReset.
        """
        if self.use_connection_ids:
            return TunnelMessage.connection_reset(
                self.stream_id, self.connection_id, self.service_id
            )
        return TunnelMessage.stream_reset(self.stream_id, self.service_id)

    async def read(self) -> bytes:
        """Read what the local application sent (at most one payload); ``b""`` at the end."""
        try:
            return await self.reader.read(MAX_PAYLOAD_SIZE)
        except OSError:
            return b""

    async def write(self, payload: bytes) -> None:
        """Write ``payload`` to the local application (ignored once the socket failed)."""
        if self.writer.is_closing():
            return
        self.writer.write(payload)
        with contextlib.suppress(OSError):
            await self.writer.drain()

    def end(self) -> bool:
        """Mark the link ended and close its socket after flushing; ``False`` if it was."""
        if self.ended:
            return False
        self.ended = True
        self.service.links.pop(self.key, None)
        self.writer.close()
        return True

    async def wait_closed(self) -> None:
        """Wait until the socket is closed, aborting it if flushing takes too long."""
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            self.writer.transport.abort()


@dataclasses.dataclass(eq=False)
class Service:
    """A service of the local proxy and its open links.

    Attributes:
        name: Service id as mapped by the user (``""`` or any name for V1).
        wire_id: Service id on the wire (``""`` for V1 and tunnels without services).
        host: Destination host (destination mode) or bind host (source mode).
        port: Destination port, or the listening port once bound (source mode).
        v2_peer: Source mode, V3: the peer answered without connection ids, so this
            service falls back to the V2 format (one connection per stream).
    """

    name: str
    wire_id: str
    host: str
    port: int
    links: dict[tuple[int, int], Link] = dataclasses.field(default_factory=dict)
    server: asyncio.Server | None = None
    start_lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    exclusive: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    next_connection_id: int = 2
    last_stream_id: int = 0
    v2_peer: bool = False

    def links_of(self, stream_id: int | None = None) -> list[Link]:
        """Open links, all or those of ``stream_id``."""
        return [
            link for link in self.links.values() if stream_id is None or link.stream_id == stream_id
        ]
