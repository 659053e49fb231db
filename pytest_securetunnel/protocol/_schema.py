"""The tunneling ``Message`` protobuf schema, defined once and built at import time.

The schema is the one printed in the V3 protocol guide (``resources/Message.proto`` in
aws-samples/aws-iot-securetunneling-localproxy). It is assembled as a
``FileDescriptorProto`` and loaded into a private ``DescriptorPool``, so no generated
``_pb2`` module and no ``protoc`` are needed, and the definition cannot clash with another
copy of the same schema registered in protobuf's default pool.
"""

from __future__ import annotations

import enum
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

try:
    from google.protobuf.unknown_fields import UnknownFieldSet
except ImportError:  # protobuf < 4.22
    _UnknownFieldSet: type[UnknownFieldSet] | None = None
else:
    _UnknownFieldSet = UnknownFieldSet

PACKAGE: Final = "com.amazonaws.iot.securedtunneling"
MESSAGE_NAME: Final = "Message"
FULL_NAME: Final = f"{PACKAGE}.{MESSAGE_NAME}"


class MessageType(enum.IntEnum):
    """``Message.Type``: what a tunneling message means."""

    UNKNOWN = 0
    DATA = 1
    STREAM_START = 2
    STREAM_RESET = 3
    SESSION_RESET = 4
    SERVICE_IDS = 5
    CONNECTION_START = 6
    CONNECTION_RESET = 7


#: ``Message.Type`` enum values, in schema order (from :class:`MessageType`).
TYPE_VALUES: Final[tuple[tuple[str, int], ...]] = tuple((t.name, t.value) for t in MessageType)

_F = descriptor_pb2.FieldDescriptorProto

#: ``Message`` fields: (proto name, number, type, label).
FIELDS: Final[tuple[tuple[str, int, int, int], ...]] = (
    ("type", 1, _F.TYPE_ENUM, _F.LABEL_OPTIONAL),
    ("streamId", 2, _F.TYPE_INT32, _F.LABEL_OPTIONAL),
    ("ignorable", 3, _F.TYPE_BOOL, _F.LABEL_OPTIONAL),
    ("payload", 4, _F.TYPE_BYTES, _F.LABEL_OPTIONAL),
    ("serviceId", 5, _F.TYPE_STRING, _F.LABEL_OPTIONAL),
    ("availableServiceIds", 6, _F.TYPE_STRING, _F.LABEL_REPEATED),
    ("connectionId", 7, _F.TYPE_UINT32, _F.LABEL_OPTIONAL),
)

#: Field number -> proto field name.
FIELD_NAMES: Final[dict[int, str]] = {number: name for name, number, _, _ in FIELDS}


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="pytest_securetunnel/securedtunneling/Message.proto",
        package=PACKAGE,
        syntax="proto3",
    )
    message = proto.message_type.add(name=MESSAGE_NAME)
    enum = message.enum_type.add(name="Type")
    for name, number in TYPE_VALUES:
        enum.value.add(name=name, number=number)
    for name, number, field_type, label in FIELDS:
        field = message.field.add(
            name=name, number=number, type=field_type, label=label, json_name=name
        )
        if field_type == _F.TYPE_ENUM:
            field.type_name = f".{FULL_NAME}.Type"
    return proto


_POOL: Final = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())

#: The generated protobuf class for ``com.amazonaws.iot.securedtunneling.Message``.
MessageClass: Final[type[Message]] = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(FULL_NAME)
)


def new_message() -> Any:
    """Return an empty protobuf ``Message`` (typed ``Any``: its fields are dynamic)."""
    return MessageClass()


def unknown_field_numbers(message: Message) -> tuple[tuple[int, int], ...]:
    """Return ``(field number, wire type)`` of each unknown field kept by a parsed message.

    A schema field sent with the wrong wire type is kept as an unknown field too.
    Uses ``google.protobuf.unknown_fields`` where present; older runtimes without it fall
    back to comparing the serialised size before and after discarding unknown fields,
    which can tell that there are unknown fields but not which (reported as ``(0, 0)``).
    """
    if _UnknownFieldSet is None:
        before = message.ByteSize()
        copy = MessageClass()
        copy.CopyFrom(message)
        copy.DiscardUnknownFields()
        return () if copy.ByteSize() == before else ((0, 0),)
    fields = _UnknownFieldSet(message)
    count = len(fields)
    if not count:
        return ()
    return tuple((fields[i].field_number, fields[i].wire_type) for i in range(count))
