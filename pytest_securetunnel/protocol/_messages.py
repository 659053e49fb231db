"""Typed tunneling messages and their protobuf encoding.

Users handle :class:`TunnelMessage`, a frozen dataclass; :func:`encode_message` and
:func:`decode_message` convert to and from the protobuf ``Message`` bytes (without the
2-byte length prefix, see :mod:`pytest_securetunnel.protocol` framing).
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.message import DecodeError

from . import _schema
from ._errors import MessageDecodeError, MessageEncodeError, UnknownFieldError
from ._message import _TYPE_BY_VALUE, TunnelMessage
from ._schema import MessageType

__all__ = [
    "MAX_PAYLOAD_SIZE",
    "MessageBytes",
    "MessageType",
    "TunnelMessage",
    "check_no_unknown_fields",
    "decode_message",
    "encode_message",
]

#: Largest ``payload`` a message may carry: 63 KiB (all protocol guides).
MAX_PAYLOAD_SIZE: Final = 64512

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1
_UINT32_MAX: Final = 2**32 - 1
_WIRE_TYPES: Final = {0: "VARINT", 1: "I64", 2: "LEN", 3: "SGROUP", 4: "EGROUP", 5: "I32"}
_SCHEMA_SOURCE: Final = "V3 protocol guide, 'ProtocolBuffers Message Schema'"


#: Buffers :func:`decode_message` and :func:`check_no_unknown_fields` accept.
MessageBytes = bytes | bytearray | memoryview


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise MessageEncodeError(
            "field-out-of-range",
            f"{name}={value} does not fit the schema type (allowed {low}..{high})",
            value=value,
            source=_SCHEMA_SOURCE,
        )


def encode_message(message: TunnelMessage) -> bytes:
    """Serialise ``message`` to protobuf ``Message`` bytes (no length prefix).

    Raises :class:`MessageEncodeError` (rule ``field-out-of-range`` or
    ``field-not-encodable``) when a field cannot be represented in the schema. Protocol
    rules such as the payload limit are not checked here.
    """
    _check_range("type", int(message.type), _INT32_MIN, _INT32_MAX)
    _check_range("stream_id", message.stream_id, _INT32_MIN, _INT32_MAX)
    _check_range("connection_id", message.connection_id, 0, _UINT32_MAX)
    pb = _schema.new_message()
    pb.type = int(message.type)
    pb.streamId = message.stream_id
    pb.ignorable = message.ignorable
    pb.payload = message.payload
    try:
        pb.serviceId = message.service_id
        pb.availableServiceIds.extend(message.available_service_ids)
    except ValueError as exc:  # e.g. a lone surrogate cannot be UTF-8 encoded
        raise MessageEncodeError(
            "field-not-encodable",
            f"a service id is not encodable as UTF-8: {exc}",
            value=(message.service_id, message.available_service_ids),
            source=_SCHEMA_SOURCE,
        ) from exc
    pb.connectionId = message.connection_id
    data: bytes = pb.SerializeToString(deterministic=True)
    return data


def _malformed(data: MessageBytes, exc: DecodeError) -> MessageDecodeError:
    return MessageDecodeError(
        "malformed-message",
        f"{len(data)} bytes do not parse as a tunneling Message: {exc}",
        value=bytes(data),
        source=_SCHEMA_SOURCE,
    )


def _parse(data: MessageBytes) -> Any:
    pb: Any = _new_pb()
    try:
        pb.ParseFromString(data)
    except DecodeError as exc:
        raise _malformed(data, exc) from exc
    return pb


def check_no_unknown_fields(data: MessageBytes) -> None:
    """Rule ``unknown-field``: a message may not carry fields outside the schema.

    All protocol guides: "It is invalid to extend the schema with additional fields and
    send them through the tunnel. The service will close the WebSocket connection if this
    occurs". A schema field sent with the wrong wire type counts as unknown, since the
    schema cannot read it. Raises :class:`MessageDecodeError` if ``data`` is not a
    ``Message`` at all.
    """
    unknown = _schema.unknown_field_numbers(_parse(data))
    if unknown:
        raise _unknown_field_error(unknown)


def _unknown_field_error(unknown: tuple[tuple[int, int], ...]) -> UnknownFieldError:
    described = []
    for number, wire_type in unknown:
        wire = _WIRE_TYPES.get(wire_type, str(wire_type))
        if number in _schema.FIELD_NAMES:
            described.append(f"{number} ({_schema.FIELD_NAMES[number]} with wire type {wire})")
        elif number:
            described.append(f"{number} (wire type {wire})")
        else:
            described.append("(field numbers not reported by this protobuf runtime)")
    return UnknownFieldError(
        "unknown-field",
        f"message carries field(s) outside the schema: {', '.join(described)}",
        value=tuple(number for number, _ in unknown),
        source="protocol guides V1-V3, 'Tunneling message frames' rules",
    )


# decode_message builds TunnelMessage through its slots: the parsed fields already have
# the dataclass's types, so __init__'s keyword handling and __post_init__ are skipped.
_new_pb: Final = _schema.MessageClass
_new_instance: Final = object.__new__
_SLOTS: Final = {name: getattr(TunnelMessage, name) for name in TunnelMessage.__slots__}
_set_type: Final = _SLOTS["type"].__set__
_set_stream_id: Final = _SLOTS["stream_id"].__set__
_set_ignorable: Final = _SLOTS["ignorable"].__set__
_set_payload: Final = _SLOTS["payload"].__set__
_set_service_id: Final = _SLOTS["service_id"].__set__
_set_available_service_ids: Final = _SLOTS["available_service_ids"].__set__
_set_connection_id: Final = _SLOTS["connection_id"].__set__
_type_of: Final = _TYPE_BY_VALUE.get
_unknown_field_numbers: Final = _schema.unknown_field_numbers


def decode_message(data: MessageBytes, *, allow_unknown_fields: bool = False) -> TunnelMessage:
    """Parse protobuf ``Message`` bytes (no length prefix) into a :class:`TunnelMessage`.

    ``data`` may be ``bytes``, a ``bytearray`` or a ``memoryview`` (e.g. the body of a
    received WebSocket message without its length prefix). Raises
    :class:`MessageDecodeError` (rule ``malformed-message``) for bytes that are not a
    ``Message`` and, unless ``allow_unknown_fields`` is true, :class:`UnknownFieldError`
    (rule ``unknown-field``) for fields outside the schema. Clients may pass
    ``allow_unknown_fields=True``: the guides tell them to ignore unknown fields.
    """
    pb: Any = _new_pb()
    try:
        pb.ParseFromString(data)
    except DecodeError as exc:
        raise _malformed(data, exc) from exc
    if not allow_unknown_fields:
        unknown = _unknown_field_numbers(pb)
        if unknown:
            raise _unknown_field_error(unknown)
    message: TunnelMessage = _new_instance(TunnelMessage)
    kind = pb.type
    _set_type(message, _type_of(kind, kind))
    _set_stream_id(message, pb.streamId)
    _set_ignorable(message, pb.ignorable)
    _set_payload(message, pb.payload)
    _set_service_id(message, pb.serviceId)
    ids = pb.availableServiceIds
    _set_available_service_ids(message, tuple(ids) if ids else ())
    _set_connection_id(message, pb.connectionId)
    return message
