"""Every use the proxy makes of ``websockets`` beyond its documented API, in one place.

The proxy relays each WebSocket frame as it is parsed, writes a relayed frame without a
task switch, screens the raw request head and holds the end of stream until the
handshake is answered. ``websockets``' asyncio server has no public hooks for these,
so :class:`~._connection.TunnelServerConnection` (a subclass of ``ServerConnection``,
which ``serve(create_connection=...)`` documents as a customisation point) overrides
the undocumented methods named in :data:`OVERRIDDEN`, and the proxy reads the
undocumented attributes through the accessors below. The objects these return are
public: ``ServerProtocol`` is ``websockets``' documented sans-I/O layer, the transport
is asyncio's.

``tests/proxy/test_ws_internals.py`` checks each of these against the installed
``websockets`` and fails, naming what changed, on a release that changes them;
``pyproject.toml`` bounds the version to the releases checked.
"""

from __future__ import annotations

import asyncio
from typing import Final

from websockets.asyncio.server import ServerConnection
from websockets.server import ServerProtocol

__all__ = ["OVERRIDDEN", "protocol_of", "serving", "transport_of", "write_paused"]

#: ``ServerConnection`` methods :class:`~._connection.TunnelServerConnection` overrides,
#: with the parameters it relies on (after ``self``). ``websockets`` calls them: the
#: asyncio ``Protocol`` callbacks, the opening handshake, and one event parsed from the
#: client (a ``Frame`` once the connection is open).
OVERRIDDEN: Final = {
    "connection_made": ("transport",),
    "data_received": ("data",),
    "eof_received": (),
    "resume_writing": (),
    "connection_lost": ("exc",),
    "handshake": ("process_request", "process_response", "server_header"),
    "process_event": ("event",),
}


def protocol_of(ws: ServerConnection) -> ServerProtocol:
    """The sans-I/O protocol of ``ws``: writes go through its ``send_binary`` and
    ``data_to_send``; its ``accept`` and ``close_*`` attributes are read.
    """
    protocol = ws.protocol
    assert isinstance(protocol, ServerProtocol)
    return protocol


def serving(ws: ServerConnection) -> bool:
    """Whether the server that accepted ``ws`` still accepts connections."""
    return ws.server.is_serving()


def transport_of(ws: ServerConnection) -> asyncio.Transport:
    """The asyncio transport of ``ws`` (to write, pause reading or abort)."""
    return ws.transport


def write_paused(ws: ServerConnection) -> bool:
    """Whether ``ws``'s write buffer is above its high-water mark (asyncio flow control)."""
    return ws.paused
