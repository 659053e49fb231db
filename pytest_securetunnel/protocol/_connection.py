"""The service side of one client's tunneling WebSocket connection (sans-I/O)."""

from __future__ import annotations

from collections.abc import Iterable

from ._errors import ProtocolError
from ._framing import FrameDecoder, encode_frame
from ._messages import MessageBytes, TunnelMessage
from ._rules import RuleContext, validate_message
from ._streams import StreamTable
from ._versions import ClientMode, ProtocolVersion

__all__ = ["TunnelConnection"]


class TunnelConnection:
    """Protocol state of one client connection, seen from the tunneling service.

    Bytes the client sent go in through :meth:`receive_data`, which returns the valid
    messages to relay to the peer and raises the first violation. Messages relayed *to*
    this client are recorded with :meth:`note_sent` (or encoded with :meth:`send`), since
    a STREAM_START from the source creates the stream the destination then sends DATA on.

    After a violation the connection is failed: :attr:`error` holds the violation and
    further :meth:`receive_data` calls raise a ``connection-failed`` error. The caller
    closes the WebSocket (the service closes only the offending connection).
    """

    def __init__(
        self,
        mode: ClientMode | str,
        version: ProtocolVersion | str,
        services: Iterable[str] = (),
    ) -> None:
        """Create the state for a client of ``mode`` speaking ``version``.

        ``version`` may be a :class:`ProtocolVersion` or its subprotocol string.
        ``services`` are the tunnel's service ids (``destinationConfig.services``).
        """
        if isinstance(version, str):
            version = ProtocolVersion.from_subprotocol(version)
        self.context = RuleContext(
            mode=ClientMode(mode),
            version=ProtocolVersion(version),
            services=tuple(services),
            streams=StreamTable(),
        )
        self._decoder = FrameDecoder()
        self._error: ProtocolError | None = None

    @property
    def mode(self) -> ClientMode:
        """The client's mode."""
        return self.context.mode

    @property
    def version(self) -> ProtocolVersion:
        """The negotiated protocol version."""
        return self.context.version

    @property
    def services(self) -> tuple[str, ...]:
        """The tunnel's service ids."""
        return self.context.services

    @property
    def streams(self) -> StreamTable:
        """Streams of this connection, from both directions."""
        return self.context.streams

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded: the start of a frame still incomplete.

        Zero means the next :meth:`receive_data` starts at a frame boundary, so a
        WebSocket message holding exactly one whole frame can be decoded on its own.
        """
        return self._decoder.buffered

    @property
    def error(self) -> ProtocolError | None:
        """The violation that failed the connection, or ``None``."""
        return self._error

    def receive_data(self, data: MessageBytes) -> list[TunnelMessage]:
        """Take bytes the client sent; return the valid messages to relay, in order.

        Raises the first :class:`ProtocolError` (decode error or rule violation). The
        messages validated before it in this call are in ``error.accepted``: relay them
        before closing the connection.
        """
        return [message for message, _ in self.receive_frames(data)]

    def receive_frames(self, data: MessageBytes) -> list[tuple[TunnelMessage, bytes]]:
        """Like :meth:`receive_data`, pairing each message with its frame as received.

        The service forwards frames unchanged, so a relay sends these bytes on rather than
        re-encoding the message. On an error, ``error.accepted_frames`` holds the frames of
        ``error.accepted``.
        """
        if self._error is not None:
            raise ProtocolError(
                "connection-failed",
                f"the connection already failed with rule {self._error.rule}; "
                "no further data is processed",
                value=self._error.rule,
                source="this library: a connection that broke a rule is closed",
            )
        self._decoder.receive_data(data)
        accepted: list[tuple[TunnelMessage, bytes]] = []
        try:
            while (found := self._decoder.next_frame()) is not None:
                message = found[0]
                validate_message(message, self.context)
                self.context.streams.apply(message, from_client=True)
                accepted.append(found)
        except ProtocolError as exc:
            exc.accepted = tuple(message for message, _ in accepted)
            exc.accepted_frames = tuple(frame for _, frame in accepted)
            self._error = exc
            raise
        return accepted

    def note_sent(self, message: TunnelMessage) -> None:
        """Record that ``message`` was relayed (or generated) to this client."""
        self.context.streams.apply(message, from_client=False)

    def send(self, message: TunnelMessage) -> bytes:
        """Record ``message`` as sent to this client and return it as a frame."""
        frame = encode_frame(message)
        self.note_sent(message)
        return frame

    def service_ids_message(self) -> TunnelMessage | None:
        """The SERVICE_IDS message the service sends first, or ``None`` for V1.

        V2/V3 guides, 'Step 1': sent after the handshake with the OpenTunnel services; an
        empty list for a tunnel without services (clients wait for it before starting).
        """
        if not self.version.has_service_ids:
            return None  # V1 has no SERVICE_IDS type.
        return TunnelMessage.service_ids(self.services)

    def stream_reset_messages(self) -> list[TunnelMessage]:
        """STREAM_RESET messages for every stream active for this client.

        Send them when the peer goes away or is replaced (docs/fidelity.md: "its peer receives
        STREAM_RESET for the affected streams"), passing each to :meth:`note_sent` or
        :meth:`send`.
        """
        return [
            TunnelMessage.stream_reset(stream_id, service_id)
            for service_id, stream_id in self.streams.active_streams.items()
        ]

    def __repr__(self) -> str:
        state = "failed" if self._error else "open"
        return (
            f"TunnelConnection(mode={self.mode.value!r}, version={self.version.subprotocol!r}, "
            f"services={self.services!r}, {state})"
        )
