"""Tunnel clients and a TCP local proxy for the AWS IoT Secure Tunneling data plane.

- :class:`TunnelClient` (asyncio) and :class:`SyncTunnelClient` (``websockets.sync``): one
  source or destination connection to a tunneling proxy, message by message.
- :class:`EchoPeer` / :class:`SyncEchoPeer`: a peer that echoes DATA, to test your side.
- :class:`LocalProxy` / :class:`SyncLocalProxy`: TCP port forwarding with the reference
  local proxy's semantics (V1, V2, V3).
- :class:`ReferenceLocalProxy`: the reference C++ ``localproxy`` binary as a managed
  process against a :class:`TunnelProxy` (found by :func:`find_localproxy`).
"""

from ._echo import EchoPeer
from ._errors import (
    HandshakeError,
    HandshakeRefused,
    LocalProxyError,
    TunnelClientError,
    TunnelClosedError,
)
from ._local_proxy import LocalProxy
from ._mapping import ServiceMapping
from ._records import MessageMatcher, MessageRecord, message_matcher
from ._reference import (
    LocalProxyNotFound,
    ReferenceLocalProxy,
    ReferenceLocalProxyError,
    find_localproxy,
    reserve_port,
)
from ._sync_client import SyncTunnelClient
from ._sync_proxy import SyncEchoPeer, SyncLocalProxy
from ._tunnel_client import DEFAULT_TIMEOUT, TunnelClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "EchoPeer",
    "HandshakeError",
    "HandshakeRefused",
    "LocalProxy",
    "LocalProxyError",
    "LocalProxyNotFound",
    "MessageMatcher",
    "MessageRecord",
    "ReferenceLocalProxy",
    "ReferenceLocalProxyError",
    "ServiceMapping",
    "SyncEchoPeer",
    "SyncLocalProxy",
    "SyncTunnelClient",
    "TunnelClient",
    "TunnelClientError",
    "TunnelClosedError",
    "find_localproxy",
    "message_matcher",
    "reserve_port",
]
