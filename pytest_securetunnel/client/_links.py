"""Local TCP connections of a :class:`LocalProxy` and the services they belong to.

Which stream and connection ids they use, and when they open and end, is decided by
:class:`~pytest_securetunnel.protocol.LocalProxyPolicy`; these only do the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Final

from ..protocol import MAX_PAYLOAD_SIZE, LocalLink

__all__ = ["CLOSE_TIMEOUT", "Link", "Service"]

#: Seconds a closing TCP connection may take to flush before it is aborted.
CLOSE_TIMEOUT: Final = 2.0


@dataclasses.dataclass(eq=False)
class Link:
    """A local TCP connection, carried over the tunnel as :attr:`state` says."""

    state: LocalLink
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

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

    def close(self) -> None:
        """Close the socket after flushing."""
        self.writer.close()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed, aborting it if flushing takes too long."""
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), CLOSE_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            self.writer.transport.abort()


@dataclasses.dataclass(eq=False)
class Service:
    """A service of the local proxy: where it listens or connects.

    :ivar name: Service id as mapped by the user (``""`` or any name for V1).
    :ivar wire_id: Service id on the wire (``""`` for V1 and tunnels without services).
    :ivar host: Destination host (destination mode) or bind host (source mode).
    :ivar port: Destination port, or the listening port once bound (source mode).
    """

    name: str
    wire_id: str
    host: str
    port: int
    server: asyncio.Server | None = None
    start_lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    exclusive: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
