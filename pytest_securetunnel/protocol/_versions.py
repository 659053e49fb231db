"""Tunneling protocol versions (WebSocket subprotocols) and client modes."""

from __future__ import annotations

import enum
from typing import Final

from ._errors import UnsupportedSubprotocolError
from ._messages import MessageType

__all__ = ["SUBPROTOCOLS", "ClientMode", "ProtocolVersion"]

_SUBPROTOCOL_PREFIX: Final = "aws.iot.securetunneling-"


class ClientMode(str, enum.Enum):
    """Mode of a tunnel client, as in the ``local-proxy-mode`` query parameter.

    Lookup is case-insensitive: ``ClientMode("SOURCE") is ClientMode.SOURCE``.
    """

    SOURCE = "source"
    DESTINATION = "destination"

    @classmethod
    def _missing_(cls, value: object) -> ClientMode | None:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower():
                    return member
        return None


class ProtocolVersion(enum.IntEnum):
    """A tunneling protocol version, negotiated as a WebSocket subprotocol."""

    V1 = 1
    V2 = 2
    V3 = 3

    @property
    def subprotocol(self) -> str:
        """The ``Sec-WebSocket-Protocol`` value, e.g. ``"aws.iot.securetunneling-3.0"``."""
        return f"{_SUBPROTOCOL_PREFIX}{self.value}.0"

    @property
    def guide(self) -> str:
        """Name of the protocol guide that defines this version, used to cite rules."""
        return f"V{self.value} protocol guide"

    @property
    def message_types(self) -> frozenset[MessageType]:
        """Message types in this version's schema (``UNKNOWN`` included)."""
        return _MESSAGE_TYPES[self]

    @property
    def has_service_ids(self) -> bool:
        """Whether messages carry ``serviceId``/``availableServiceIds`` (V2 and later)."""
        return self >= ProtocolVersion.V2

    @property
    def has_connection_ids(self) -> bool:
        """Whether messages carry ``connectionId`` (V3)."""
        return self >= ProtocolVersion.V3

    @classmethod
    def from_subprotocol(cls, subprotocol: str) -> ProtocolVersion:
        """Return the version for a subprotocol string, exactly as AWS spells it.

        Raises :class:`UnsupportedSubprotocolError` (rule ``subprotocol-unsupported``).
        """
        for version in cls:
            if version.subprotocol == subprotocol:
                return version
        raise UnsupportedSubprotocolError(
            "subprotocol-unsupported",
            f"Sec-WebSocket-Protocol {subprotocol!r} is not one of {', '.join(SUBPROTOCOLS)}",
            value=subprotocol,
            source="V3 protocol guide, 'Connecting to the proxy server and tunnel'",
        )


_V1_TYPES: Final = frozenset(
    {
        MessageType.UNKNOWN,
        MessageType.DATA,
        MessageType.STREAM_START,
        MessageType.STREAM_RESET,
        MessageType.SESSION_RESET,
    }
)
_MESSAGE_TYPES: Final = {
    ProtocolVersion.V1: _V1_TYPES,
    ProtocolVersion.V2: _V1_TYPES | {MessageType.SERVICE_IDS},
    ProtocolVersion.V3: frozenset(MessageType),
}

#: Supported subprotocols, newest first.
SUBPROTOCOLS: Final[tuple[str, ...]] = tuple(
    v.subprotocol for v in sorted(ProtocolVersion, reverse=True)
)
