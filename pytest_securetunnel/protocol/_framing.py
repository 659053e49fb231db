"""Tunneling frames: a 2-byte big-endian length prefix followed by a protobuf ``Message``.

Frames are independent of WebSocket frames: one WebSocket message may carry several
tunneling frames or a slice of one, so :class:`FrameDecoder` reassembles a byte stream
however it is cut (protocol guides, "Tunneling message frames").
"""

from __future__ import annotations

from typing import Final

from ._errors import FrameError, ProtocolError, RuleViolation
from ._messages import (
    MAX_PAYLOAD_SIZE,
    MessageBytes,
    TunnelMessage,
    decode_message,
    encode_message,
)

__all__ = [
    "LENGTH_PREFIX_SIZE",
    "MAX_MESSAGE_SIZE",
    "MAX_WEBSOCKET_FRAME_SIZE",
    "FrameDecoder",
    "encode_frame",
]

#: Size of the big-endian unsigned length prefix.
LENGTH_PREFIX_SIZE: Final = 2
#: Largest serialised ``Message`` a frame can hold: the 2-byte prefix's maximum.
MAX_MESSAGE_SIZE: Final = 2**16 - 1
#: Largest WebSocket frame payload the service sends or accepts (protocol guides).
MAX_WEBSOCKET_FRAME_SIZE: Final = 131076

_FRAMES_SOURCE: Final = "protocol guides V1-V3, 'Tunneling message frames'"


def _payload_too_large(message: TunnelMessage, source: str) -> RuleViolation:
    """Return the ``payload-too-large`` violation for ``message`` (shared by encode and rules)."""
    return RuleViolation(
        "payload-too-large",
        f"{message.type_name} payload is {len(message.payload)} bytes; "
        f"the limit is {MAX_PAYLOAD_SIZE} bytes (63 KiB)",
        value=len(message.payload),
        source=source,
    )


def encode_frame(message: TunnelMessage, *, enforce_payload_limit: bool = True) -> bytes:
    """Return ``message`` as one tunneling frame: length prefix + serialised ``Message``.

    Raises :class:`RuleViolation` (rule ``payload-too-large``) if the payload exceeds
    64512 bytes, unless ``enforce_payload_limit`` is false (to craft invalid traffic in
    tests), and :class:`FrameError` (rule ``frame-too-large``) if the serialised message
    exceeds 65535 bytes, which the length prefix cannot express.
    """
    if enforce_payload_limit and len(message.payload) > MAX_PAYLOAD_SIZE:
        raise _payload_too_large(message, _FRAMES_SOURCE)
    body = encode_message(message)
    if len(body) > MAX_MESSAGE_SIZE:
        raise FrameError(
            "frame-too-large",
            f"{message.type_name} message serialises to {len(body)} bytes; a 2-byte length "
            f"prefix allows at most {MAX_MESSAGE_SIZE}",
            value=len(body),
            source=_FRAMES_SOURCE,
        )
    return len(body).to_bytes(LENGTH_PREFIX_SIZE, "big") + body


class FrameDecoder:
    """Incremental decoder of a tunneling byte stream (sans-I/O).

    Feed it bytes as they arrive, cut anywhere; it returns each message once its frame is
    complete. A frame whose body is not a valid ``Message`` raises a
    :class:`~pytest_securetunnel.protocol.ProtocolError` subclass after that frame has been
    consumed, so the decoder stays aligned and decoding may continue.
    """

    def __init__(self, *, allow_unknown_fields: bool = False) -> None:
        """Create a decoder; ``allow_unknown_fields`` is passed to ``decode_message``."""
        self.allow_unknown_fields = allow_unknown_fields
        self._buffer = bytearray()
        self._offset = 0

    @property
    def buffered(self) -> int:
        """Number of received bytes not yet decoded (a partial frame)."""
        return len(self._buffer) - self._offset

    def receive_data(self, data: MessageBytes) -> None:
        """Append ``data`` to the stream; call :meth:`next_message` to decode."""
        if self._offset:
            del self._buffer[: self._offset]
            self._offset = 0
        self._buffer += data

    def next_message(self) -> TunnelMessage | None:
        """Decode the next complete frame, or return ``None`` if more bytes are needed.

        Raises :class:`~pytest_securetunnel.protocol.MessageDecodeError` (rules
        ``malformed-message``, ``unknown-field``) for an invalid frame body.
        """
        found = self.next_frame()
        return None if found is None else found[0]

    def next_frame(self) -> tuple[TunnelMessage, bytes] | None:
        """Like :meth:`next_message`, with the frame's bytes as received (prefix included).

        A relay forwards these bytes unchanged: re-encoding a decoded message may give
        other bytes (field order, default values written out).
        """
        start = self._offset
        available = len(self._buffer) - start
        if available < LENGTH_PREFIX_SIZE:
            return None
        buffer = self._buffer
        end = start + LENGTH_PREFIX_SIZE + (buffer[start] << 8 | buffer[start + 1])
        if end > len(buffer):
            return None
        frame = bytes(buffer[start:end])  # a copy: the buffer changes later
        self._offset = end
        body = memoryview(frame)[LENGTH_PREFIX_SIZE:]
        return decode_message(body, allow_unknown_fields=self.allow_unknown_fields), frame

    def feed(self, data: MessageBytes) -> list[TunnelMessage]:
        """Add ``data`` and return every message completed by it, in order.

        On an invalid frame the error is raised with the messages decoded before it in
        this call attached as ``error.accepted``.
        """
        self.receive_data(data)
        messages: list[TunnelMessage] = []
        while True:
            try:
                message = self.next_message()
            except ProtocolError as exc:
                exc.accepted = tuple(messages)
                raise
            if message is None:
                return messages
            messages.append(message)
