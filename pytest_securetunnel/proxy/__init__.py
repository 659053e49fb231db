"""The tunneling data plane: an asyncio WebSocket proxy over the fake control plane.

:class:`TunnelProxy` serves ``/tunnel`` on ``ws://`` and ``wss://`` (ephemeral ports of
127.0.0.1), admits handshakes with the fake's tokens, relays tunneling messages between
a tunnel's source and destination, logs every event, and injects faults.
"""

from ._events import EventKind, EventMatch, ProxyEvent
from ._handshake import MAX_REQUEST_SIZE
from ._peer import AWS_BANDWIDTH_LIMIT, Delivery
from ._proxy import Mode, TunnelProxy, TunnelProxyError
from ._tls import subject_hash

__all__ = [
    "AWS_BANDWIDTH_LIMIT",
    "MAX_REQUEST_SIZE",
    "Delivery",
    "EventKind",
    "EventMatch",
    "Mode",
    "ProxyEvent",
    "TunnelProxy",
    "TunnelProxyError",
    "subject_hash",
]
