"""A tunnel client's protocol decisions, as a sans-I/O state machine.

:class:`TunnelClientPolicy` is what one source or destination client of the tunneling
proxy knows and decides, whatever carries its bytes: which stream is active per service
id (from the messages it sends and receives), which received messages are stale, how a
received message reads at the client's protocol version, the ids of the messages it
sends, and the log of every message. Feed it each WebSocket message received
(:meth:`~TunnelClientPolicy.receive_frame`) and each message before it is sent
(:meth:`~TunnelClientPolicy.sending`); it says when the connection must be closed
(:class:`CloseConnection`). The asyncio and synchronous tunnel clients carry out its
decisions.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal

from ._errors import ProtocolError
from ._framing import FrameDecoder, encode_frame
from ._messages import MAX_PAYLOAD_SIZE, MessageType, TunnelMessage
from ._streams import StreamTable
from ._versions import ClientMode, ProtocolVersion

__all__ = ["CloseConnection", "Direction", "MessageRecord", "TunnelClientPolicy"]

#: Which way a logged message went, seen from the client.
Direction = Literal["sent", "received"]

_INT32_MAX: Final = 2**31 - 1
# V3 guide: stream ID validation is performed on these types; others are never stale.
_STREAM_CHECKED: Final = frozenset(
    {
        MessageType.DATA,
        MessageType.STREAM_RESET,
        MessageType.CONNECTION_START,
        MessageType.CONNECTION_RESET,
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class MessageRecord:
    """One entry of a tunnel client's ``messages`` log.

    :ivar direction: ``"sent"`` by this client or ``"received"`` from the proxy.
    :ivar message: The message (received ones as this client's protocol version reads them).
    :ivar dropped: Whether the client discarded the received message as stale (it is in the
        log but never returned by ``receive``).
    """

    direction: Direction
    message: TunnelMessage
    dropped: bool = False


@dataclasses.dataclass(frozen=True)
class CloseConnection:
    """Close the WebSocket with ``code`` and ``reason``.

    ``error`` is the protocol error behind it, ``None`` when ``reason`` says it all.
    """

    code: int
    reason: str
    error: Exception | None = None


class TunnelClientPolicy:
    """One tunnel client's streams, received-message queue and message log.

    Streams are tracked per service id from both directions: a STREAM_START received
    (destination) or sent (source) makes its stream id the active one, and DATA,
    STREAM_RESET, CONNECTION_START and CONNECTION_RESET for another stream id are stale
    (V3 guide: "this message is considered to be stale and will be discarded"): logged,
    never queued, when :attr:`drop_stale` is set. SERVICE_IDS sets :attr:`service_ids`
    and is not queued. Received messages are read as this client's protocol version
    reads them: a V1 client sees no service ids, a V1/V2 client no connection ids.

    Not thread-safe: a caller sharing it between threads holds one lock around calls.
    """

    def __init__(
        self, mode: ClientMode | str, version: ProtocolVersion, *, drop_stale: bool = True
    ) -> None:
        """A client of ``mode`` that negotiated ``version``."""
        self.mode = ClientMode(mode)
        self.version = version
        self.drop_stale = drop_stale
        """Whether stale messages are dropped (they stay in :attr:`log` either way)."""
        self.service_ids: tuple[str, ...] | None = None
        """Service ids from the last SERVICE_IDS message, or ``None`` before one arrived."""
        self.log: list[MessageRecord] = []
        """Every message sent and received so far, in order."""
        self.closed = False
        """Whether the connection has ended (see :meth:`connection_closed`)."""
        self._decoder = FrameDecoder(allow_unknown_fields=True)  # guides: ignore unknown fields
        self._streams = StreamTable()
        self._next_connection: dict[str, int] = {}
        self._queue: deque[TunnelMessage] = deque()

    def __repr__(self) -> str:
        return (
            f"<TunnelClientPolicy {self.mode.value} {self.version.subprotocol} "
            f"streams={dict(self._streams.active_streams)}>"
        )

    # -- streams --------------------------------------------------------------------------

    @property
    def active_streams(self) -> Mapping[str, int]:
        """Service id -> active stream id (``""`` for no service id)."""
        return self._streams.active_streams

    def active_stream_id(self, service_id: str = "") -> int | None:
        """The active stream id for ``service_id``, or ``None``."""
        return self._streams.active_stream_id(service_id)

    def connection_ids(self, service_id: str = "") -> frozenset[int]:
        """Open connection ids of the active stream for ``service_id`` (V3)."""
        return self._streams.connection_ids(service_id)

    # -- receiving ------------------------------------------------------------------------

    def receive_frame(self, data: bytes | str) -> CloseConnection | None:
        """One WebSocket message arrived: log and queue the messages it completes.

        Returns the close to carry out for a text message or an unparsable frame (the
        messages before the bad frame are taken first), else ``None``.
        """
        if isinstance(data, str):
            return CloseConnection(1003, "text frames are not tunneling frames")
        try:
            messages = self._decoder.feed(data)
        except ProtocolError as exc:
            for message in exc.accepted:
                self._received(message)
            # localproxy's words for a frame it cannot parse.
            return CloseConnection(1002, "Could not parse web socket binary frame", exc)
        for message in messages:
            self._received(message)
        return None

    def connection_closed(self) -> None:
        """The connection ended: nothing more arrives (queued messages stay queued)."""
        self.closed = True

    def _as_read(self, message: TunnelMessage) -> TunnelMessage:
        # Cross-version interop is at message level: fields outside a version's schema are
        # unknown to it and ignored (V2/V3 guides, 'Backward compatibility').
        if not self.version.has_connection_ids and message.connection_id:
            message = dataclasses.replace(message, connection_id=0)
        if not self.version.has_service_ids and (
            message.service_id or message.available_service_ids
        ):
            message = dataclasses.replace(message, service_id="", available_service_ids=())
        return message

    def _keyed(self, message: TunnelMessage) -> TunnelMessage:
        """``message`` with the service id its stream is tracked under.

        V2 guide, 'Backward compatibility': a V1 peer sends no service id, which works for
        a single service; such messages belong to the one active stream.
        """
        active = self._streams.active_streams
        if message.service_id or "" in active or len(active) != 1:
            return message
        return dataclasses.replace(message, service_id=next(iter(active)))

    def is_stale(self, message: TunnelMessage) -> bool:
        """Whether ``message`` (received) names a stream that is not the active one."""
        if message.type not in _STREAM_CHECKED:
            return False
        keyed = self._keyed(message)
        return self._streams.active_stream_id(keyed.service_id) != message.stream_id

    def _track(self, message: TunnelMessage, *, from_client: bool) -> None:
        if message.type == MessageType.STREAM_START:
            if not from_client and self.mode is ClientMode.SOURCE:
                return  # V3 guide: a source treats a received StreamStart as an error.
            self._next_connection[message.service_id] = 2
        self._streams.apply(self._keyed(message), from_client=from_client)

    def _received(self, message: TunnelMessage) -> None:
        message = self._as_read(message)
        if message.type == MessageType.SERVICE_IDS:
            self.service_ids = message.available_service_ids
            self.log.append(MessageRecord("received", message))
            return
        dropped = self.drop_stale and self.is_stale(message)
        if not dropped:
            self._track(message, from_client=False)
            self._queue.append(message)
        self.log.append(MessageRecord("received", message, dropped))

    def take(self, predicate: Callable[[TunnelMessage], bool]) -> TunnelMessage | None:
        """Remove and return the first queued message matching ``predicate``, if any."""
        for index, message in enumerate(self._queue):
            if predicate(message):
                del self._queue[index]
                return message
        return None

    def find(self, predicate: Callable[[TunnelMessage], bool], since: int) -> TunnelMessage | None:
        """The first received, not dropped, logged message from ``since`` that matches."""
        for record in self.log[since:]:
            received = record.direction == "received" and not record.dropped
            if received and predicate(record.message):
                return record.message
        return None

    # -- sending --------------------------------------------------------------------------

    @staticmethod
    def encode(
        messages: Sequence[TunnelMessage], enforce_payload_limit: bool = True
    ) -> list[bytes]:
        """The frames of ``messages``, one each; raises before any is tracked or sent."""
        return [encode_frame(m, enforce_payload_limit=enforce_payload_limit) for m in messages]

    def sending(self, message: TunnelMessage) -> None:
        """``message`` is about to be sent: track its stream and log it."""
        self._track(message, from_client=True)
        self.log.append(MessageRecord("sent", message))

    def _wire_ids(self, service_id: str, connection_id: int) -> tuple[str, int]:
        if service_id and not self.version.has_service_ids:
            raise ValueError(f"{self.version.guide}: messages carry no service id")
        return service_id, connection_id if self.version.has_connection_ids else 0

    def require_connection_ids(self, kind: str) -> None:
        """Raise ``ValueError`` unless the version has connection ids (``kind``: the type)."""
        if not self.version.has_connection_ids:
            raise ValueError(f"{kind} is not part of the {self.version.guide}")

    def stream_for(self, stream_id: int | None, service_id: str) -> int | None:
        """``stream_id``, or the active stream of ``service_id`` (``None`` if none)."""
        return self._streams.active_stream_id(service_id) if stream_id is None else stream_id

    def stream_start(self, service_id: str = "", connection_id: int = 1) -> TunnelMessage:
        """STREAM_START with the next stream id for ``service_id``.

        Stream ids count up per service id from 1 (localproxy). The connection id is sent
        on V3 only (V3 guide: the first connection of a stream is connection 1).
        """
        last = self._streams.last_stream_id(service_id)
        stream_id = 1 if last is None else last % _INT32_MAX + 1
        service_id, connection_id = self._wire_ids(service_id, connection_id)
        return TunnelMessage.stream_start(stream_id, service_id, connection_id)

    def connection_start(
        self, stream_id: int, connection_id: int | None, service_id: str
    ) -> TunnelMessage:
        """CONNECTION_START (V3); without ``connection_id`` the next unused one (2, 3, ...)."""
        self.require_connection_ids("CONNECTION_START")
        if connection_id is None:
            used = max(self._streams.connection_ids(service_id), default=1)
            connection_id = max(self._next_connection.get(service_id, 2), used + 1)
            self._next_connection[service_id] = connection_id + 1
        return TunnelMessage.connection_start(stream_id, connection_id, service_id)

    def data(
        self, data: bytes, stream_id: int, service_id: str, connection_id: int
    ) -> list[TunnelMessage]:
        """``data`` as DATA messages of at most 64512 bytes each (none for ``b""``)."""
        service_id, connection_id = self._wire_ids(service_id, connection_id)
        view = memoryview(data)
        return [
            TunnelMessage.data(
                stream_id, bytes(view[i : i + MAX_PAYLOAD_SIZE]), service_id, connection_id
            )
            for i in range(0, len(view), MAX_PAYLOAD_SIZE)
        ]

    def stream_reset(self, stream_id: int, service_id: str) -> TunnelMessage:
        """STREAM_RESET for ``stream_id`` of ``service_id``."""
        service_id, _ = self._wire_ids(service_id, 0)
        return TunnelMessage.stream_reset(stream_id, service_id)

    def connection_reset(
        self, stream_id: int, connection_id: int, service_id: str
    ) -> TunnelMessage:
        """CONNECTION_RESET (V3) for ``connection_id`` of ``stream_id``."""
        self.require_connection_ids("CONNECTION_RESET")
        return TunnelMessage.connection_reset(stream_id, connection_id, service_id)
