"""The typed tunneling message: :class:`TunnelMessage`, a frozen dataclass.

It lives apart from its encoding so the protocol's errors can name it without
importing the codec that raises them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Final

from ._schema import MessageType

__all__ = ["TunnelMessage"]


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class TunnelMessage:
    """One tunneling message, the typed form of the protobuf ``Message``.

    ``type`` is a :class:`MessageType` when the value is in the schema and a plain ``int``
    otherwise (proto3 enums are open, so peers may send types this schema does not know).
    ``connection_id`` 0 means "absent" (proto3 cannot tell the two apart).
    """

    type: MessageType | int
    stream_id: int = 0
    ignorable: bool = False
    payload: bytes = b""
    service_id: str = ""
    available_service_ids: tuple[str, ...] = ()
    connection_id: int = 0

    def __post_init__(self) -> None:
        kind = self.type
        if kind.__class__ is not MessageType:
            known = _TYPE_BY_VALUE.get(kind)
            if known is not None:
                object.__setattr__(self, "type", known)
        if not isinstance(self.available_service_ids, tuple):
            object.__setattr__(self, "available_service_ids", tuple(self.available_service_ids))

    @property
    def type_name(self) -> str:
        """Name of the type, e.g. ``"DATA"``, or ``"type 42"`` for a type not in the schema."""
        if isinstance(self.type, MessageType):
            return self.type.name
        return f"type {self.type}"

    @property
    def is_known_type(self) -> bool:
        """Whether ``type`` is a value of :class:`MessageType`."""
        return isinstance(self.type, MessageType)

    def __repr__(self) -> str:
        kind = self.type.name if isinstance(self.type, MessageType) else str(self.type)
        parts = [f"type={kind}"]
        for field in dataclasses.fields(self)[1:]:
            value = getattr(self, field.name)
            if value == field.default:
                continue
            if field.name == "payload" and len(value) > 32:
                parts.append(f"payload=<{len(value)} bytes>")
            else:
                parts.append(f"{field.name}={value!r}")
        return f"TunnelMessage({', '.join(parts)})"

    @classmethod
    def data(
        cls, stream_id: int, payload: bytes, service_id: str = "", connection_id: int = 0
    ) -> TunnelMessage:
        """Build a DATA message."""
        return cls(
            MessageType.DATA,
            stream_id=stream_id,
            payload=payload,
            service_id=service_id,
            connection_id=connection_id,
        )

    @classmethod
    def stream_start(
        cls, stream_id: int, service_id: str = "", connection_id: int = 0
    ) -> TunnelMessage:
        """Build a STREAM_START message (V3 clients send ``connection_id=1``)."""
        return cls(
            MessageType.STREAM_START,
            stream_id=stream_id,
            service_id=service_id,
            connection_id=connection_id,
        )

    @classmethod
    def stream_reset(cls, stream_id: int, service_id: str = "") -> TunnelMessage:
        """Build a STREAM_RESET message."""
        return cls(MessageType.STREAM_RESET, stream_id=stream_id, service_id=service_id)

    @classmethod
    def session_reset(cls) -> TunnelMessage:
        """Build a SESSION_RESET message (only the service may send one)."""
        return cls(MessageType.SESSION_RESET)

    @classmethod
    def connection_start(
        cls, stream_id: int, connection_id: int, service_id: str = ""
    ) -> TunnelMessage:
        """Build a CONNECTION_START message (V3)."""
        return cls(
            MessageType.CONNECTION_START,
            stream_id=stream_id,
            service_id=service_id,
            connection_id=connection_id,
        )

    @classmethod
    def connection_reset(
        cls, stream_id: int, connection_id: int, service_id: str = ""
    ) -> TunnelMessage:
        """Build a CONNECTION_RESET message (V3)."""
        return cls(
            MessageType.CONNECTION_RESET,
            stream_id=stream_id,
            service_id=service_id,
            connection_id=connection_id,
        )

    @classmethod
    def service_ids(cls, service_ids: Iterable[str]) -> TunnelMessage:
        """Build a SERVICE_IDS message listing ``service_ids`` (only the service sends one)."""
        return cls(MessageType.SERVICE_IDS, available_service_ids=tuple(service_ids))


_TYPE_BY_VALUE: Final[dict[int, MessageType]] = {int(t): t for t in MessageType}
