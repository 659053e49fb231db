"""Errors of the tunneling protocol core.

Every error is a :class:`ProtocolError` with a short, stable :attr:`~ProtocolError.rule`
id (for example ``"stream-id-zero"``), the offending :attr:`~ProtocolError.value` and the
:attr:`~ProtocolError.source` of the rule, and its message names all three.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_securetunnel._errors import SecureTunnelError

if TYPE_CHECKING:
    from ._message import TunnelMessage

__all__ = [
    "FrameError",
    "MessageDecodeError",
    "MessageEncodeError",
    "ProtocolError",
    "RuleViolation",
    "UnknownFieldError",
    "UnsupportedSubprotocolError",
]


class ProtocolError(SecureTunnelError):
    """A tunneling protocol rule was broken.

    :ivar rule: Short stable id of the rule, e.g. ``"stream-id-zero"``.
    :ivar detail: What was wrong, in words, including the offending value.
    :ivar value: The offending value.
    :ivar source: Where the rule comes from, e.g. ``"V3 protocol guide, ..."``.
    :ivar accepted: Messages that were complete and valid before the error in the same
        ``feed``/``receive_data`` call, in order. They are not lost: a caller that
        relays messages should relay these before acting on the error.
    :ivar accepted_frames: The frames of :attr:`accepted` as received, when the error came
        from :meth:`TunnelConnection.receive_frames
        <pytest_securetunnel.protocol.TunnelConnection.receive_frames>` (else empty).
    """

    rule: str
    detail: str
    value: object
    source: str
    accepted: tuple[TunnelMessage, ...]
    accepted_frames: tuple[bytes, ...]

    def __init__(self, rule: str, detail: str, *, value: object, source: str) -> None:
        self.rule = rule
        self.detail = detail
        self.value = value
        self.source = source
        self.accepted = ()
        self.accepted_frames = ()
        super().__init__(f"rule {rule}: {detail} (source: {source})")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (type(self), self.rule, self.detail, self.value, self.source))


def _rebuild(
    cls: type[ProtocolError], rule: str, detail: str, value: object, source: str
) -> ProtocolError:
    return cls(rule, detail, value=value, source=source)


class FrameError(ProtocolError):
    """A tunneling frame (2-byte length prefix + message) cannot be built."""


class MessageDecodeError(ProtocolError):
    """The bytes of a frame are not a valid ``Message``."""


class UnknownFieldError(MessageDecodeError):
    """A ``Message`` carries protobuf fields that are not in the schema."""


class MessageEncodeError(ProtocolError, ValueError):
    """A :class:`~pytest_securetunnel.protocol.TunnelMessage` has a field the schema cannot hold."""


class RuleViolation(ProtocolError):
    """A well-formed message breaks a rule of the protocol version or connection state."""


class UnsupportedSubprotocolError(ProtocolError, ValueError):
    """A WebSocket subprotocol is not one of the tunneling subprotocols."""
