"""The AWS IoT Secure Tunneling data-plane protocol as a sans-I/O library.

Bytes in, messages and bytes out; no sockets, no asyncio. The pieces:

- :class:`TunnelMessage` / :class:`MessageType`: the protobuf ``Message``, typed.
- :func:`encode_frame` / :class:`FrameDecoder`: 2-byte length-prefixed frames, reassembled
  however the WebSocket layer cuts them.
- :class:`ProtocolVersion`: the ``aws.iot.securetunneling-1.0/2.0/3.0`` subprotocols.
- :data:`RULES`: each rule the service enforces, by name (:class:`RuleInfo`).
- :class:`TunnelConnection`: the service's per-connection state machine.
- :class:`RelayPolicy`: the service's relay between a tunnel's two connections, as a
  state machine: events in, actions (:data:`RelayAction`) out.
- :class:`LocalProxyPolicy`: a local proxy's per-version stream and connection
  decisions, as a state machine: events in, actions (:data:`LocalProxyAction`) out.
- :class:`TunnelClientPolicy`: a tunnel client's streams, stale-message filtering,
  message ids and log, as a state machine: WebSocket messages in, tunnel messages (and
  :class:`CloseConnection`) out.

The implementation lives in private modules (``_messages``, ``_framing``, ...); import
from ``pytest_securetunnel.protocol`` itself.
"""

from ._connection import TunnelConnection
from ._errors import (
    FrameError,
    MessageDecodeError,
    MessageEncodeError,
    ProtocolError,
    RuleViolation,
    UnknownFieldError,
    UnsupportedSubprotocolError,
)
from ._framing import MAX_WEBSOCKET_FRAME_SIZE, FrameDecoder, encode_frame
from ._local_proxy import (
    ConnectLocal,
    EndLocal,
    Fatal,
    Ignored,
    LocalLink,
    LocalProxyAction,
    LocalProxyPolicy,
    SendMessage,
    WriteLocal,
)
from ._messages import (
    MAX_PAYLOAD_SIZE,
    MessageType,
    TunnelMessage,
    decode_message,
    encode_message,
)
from ._relay import (
    CLOSED,
    DELETED,
    EXPIRED,
    INTERNAL_CLOSE,
    REVOKED,
    SERVICES_CHANGED,
    Close,
    Disconnected,
    Dropped,
    Received,
    RelayAction,
    RelayPolicy,
    Send,
    TunnelState,
    Violation,
)
from ._rules import RULES, RuleInfo
from ._streams import StreamTable
from ._tunnel_client import CloseConnection, Direction, MessageRecord, TunnelClientPolicy
from ._versions import SUBPROTOCOLS, ClientMode, ProtocolVersion

__all__ = [
    "CLOSED",
    "DELETED",
    "EXPIRED",
    "INTERNAL_CLOSE",
    "MAX_PAYLOAD_SIZE",
    "MAX_WEBSOCKET_FRAME_SIZE",
    "REVOKED",
    "RULES",
    "SERVICES_CHANGED",
    "SUBPROTOCOLS",
    "ClientMode",
    "Close",
    "CloseConnection",
    "ConnectLocal",
    "Direction",
    "Disconnected",
    "Dropped",
    "EndLocal",
    "Fatal",
    "FrameDecoder",
    "FrameError",
    "Ignored",
    "LocalLink",
    "LocalProxyAction",
    "LocalProxyPolicy",
    "MessageDecodeError",
    "MessageEncodeError",
    "MessageRecord",
    "MessageType",
    "ProtocolError",
    "ProtocolVersion",
    "Received",
    "RelayAction",
    "RelayPolicy",
    "RuleInfo",
    "RuleViolation",
    "Send",
    "SendMessage",
    "StreamTable",
    "TunnelClientPolicy",
    "TunnelConnection",
    "TunnelMessage",
    "TunnelState",
    "UnknownFieldError",
    "UnsupportedSubprotocolError",
    "Violation",
    "WriteLocal",
    "decode_message",
    "encode_frame",
    "encode_message",
]
