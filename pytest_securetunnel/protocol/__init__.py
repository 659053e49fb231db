"""The AWS IoT Secure Tunneling data-plane protocol as a sans-I/O library.

Bytes in, messages and bytes out; no sockets, no asyncio. The pieces:

- :class:`TunnelMessage` / :class:`MessageType`: the protobuf ``Message``, typed.
- :func:`encode_frame` / :class:`FrameDecoder`: 2-byte length-prefixed frames, reassembled
  however the WebSocket layer cuts them.
- :class:`ProtocolVersion`: the ``aws.iot.securetunneling-1.0/2.0/3.0`` subprotocols.
- :mod:`~pytest_securetunnel.protocol.rules`: each rule the service enforces, by name.
- :class:`TunnelConnection`: the service's per-connection state machine.
- :class:`RelayPolicy`: the service's relay between a tunnel's two connections, as a
  state machine: events in, actions (:data:`RelayAction`) out.
- :class:`LocalProxyPolicy`: a local proxy's per-version stream and connection
  decisions, as a state machine: events in, actions (:data:`LocalProxyAction`) out.
"""

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
from .connection import TunnelConnection
from .errors import (
    FrameError,
    MessageDecodeError,
    MessageEncodeError,
    ProtocolError,
    RuleViolation,
    UnknownFieldError,
    UnsupportedSubprotocolError,
)
from .framing import (
    LENGTH_PREFIX_SIZE,
    MAX_MESSAGE_SIZE,
    MAX_WEBSOCKET_FRAME_SIZE,
    FrameDecoder,
    encode_frame,
)
from .messages import (
    MAX_PAYLOAD_SIZE,
    MessageBytes,
    MessageType,
    TunnelMessage,
    check_no_unknown_fields,
    decode_message,
    encode_message,
)
from .rules import MESSAGE_RULES, RuleContext, validate_message
from .streams import StreamTable
from .versions import SUBPROTOCOLS, ClientMode, ProtocolVersion

__all__ = [
    "CLOSED",
    "DELETED",
    "EXPIRED",
    "INTERNAL_CLOSE",
    "LENGTH_PREFIX_SIZE",
    "MAX_MESSAGE_SIZE",
    "MAX_PAYLOAD_SIZE",
    "MAX_WEBSOCKET_FRAME_SIZE",
    "MESSAGE_RULES",
    "REVOKED",
    "SERVICES_CHANGED",
    "SUBPROTOCOLS",
    "ClientMode",
    "Close",
    "ConnectLocal",
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
    "MessageBytes",
    "MessageDecodeError",
    "MessageEncodeError",
    "MessageType",
    "ProtocolError",
    "ProtocolVersion",
    "Received",
    "RelayAction",
    "RelayPolicy",
    "RuleContext",
    "RuleViolation",
    "Send",
    "SendMessage",
    "StreamTable",
    "TunnelConnection",
    "TunnelMessage",
    "TunnelState",
    "UnknownFieldError",
    "UnsupportedSubprotocolError",
    "Violation",
    "WriteLocal",
    "check_no_unknown_fields",
    "decode_message",
    "encode_frame",
    "encode_message",
    "validate_message",
]
