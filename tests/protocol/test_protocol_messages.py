"""TunnelMessage, the protobuf schema, encode/decode and unknown-field rejection."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest
from google.protobuf import descriptor_pool
from hypothesis import given
from hypothesis import strategies as st
from strategies_protocol import tunnel_messages

from pytest_securetunnel.protocol import (
    MessageDecodeError,
    MessageEncodeError,
    MessageType,
    ProtocolError,
    TunnelMessage,
    UnknownFieldError,
    _schema,
    decode_message,
    encode_message,
)
from pytest_securetunnel.protocol._messages import check_no_unknown_fields

DATA_SSH = TunnelMessage.data(1, b"hello", "SSH", 1)
DATA_SSH_BYTES = b'\x08\x01\x10\x01"\x05hello*\x03SSH8\x01'


def test_schema_is_the_guides_message() -> None:
    descriptor = _schema.MessageClass.DESCRIPTOR
    assert descriptor.full_name == "com.amazonaws.iot.securedtunneling.Message"
    assert descriptor.file.package == "com.amazonaws.iot.securedtunneling"
    assert [(f.name, f.number) for f in descriptor.fields] == [
        ("type", 1),
        ("streamId", 2),
        ("ignorable", 3),
        ("payload", 4),
        ("serviceId", 5),
        ("availableServiceIds", 6),
        ("connectionId", 7),
    ]
    enum = descriptor.enum_types_by_name["Type"]
    assert [(v.name, v.number) for v in enum.values] == [(t.name, t.value) for t in MessageType]


def test_schema_lives_in_a_private_pool() -> None:
    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName(_schema.FULL_NAME)


def test_encode_message_exact_bytes() -> None:
    assert encode_message(DATA_SSH) == DATA_SSH_BYTES


def test_decode_message_exact_message() -> None:
    assert decode_message(DATA_SSH_BYTES) == DATA_SSH


def test_default_fields_encode_to_nothing() -> None:
    assert encode_message(TunnelMessage(MessageType.UNKNOWN)) == b""
    assert decode_message(b"") == TunnelMessage(MessageType.UNKNOWN)


def test_service_ids_round_trip() -> None:
    message = TunnelMessage.service_ids(["SSH", "VNC"])
    assert message.available_service_ids == ("SSH", "VNC")
    assert decode_message(encode_message(message)) == message


def test_type_is_normalised_to_message_type() -> None:
    message = TunnelMessage(2, stream_id=1)
    assert message.type is MessageType.STREAM_START
    assert message == TunnelMessage.stream_start(1)
    assert message.is_known_type
    assert message.type_name == "STREAM_START"


def test_unknown_type_is_kept_as_int() -> None:
    message = decode_message(b"\x08\x2a\x18\x01")
    assert message == TunnelMessage(42, ignorable=True)
    assert type(message.type) is int
    assert not message.is_known_type
    assert message.type_name == "type 42"


def test_list_of_service_ids_becomes_tuple() -> None:
    message = TunnelMessage(MessageType.SERVICE_IDS, available_service_ids=["A"])  # type: ignore[arg-type]
    assert message.available_service_ids == ("A",)


def test_repr_shows_set_fields_and_abbreviates_payload() -> None:
    assert repr(TunnelMessage.stream_reset(3, "SSH")) == (
        "TunnelMessage(type=STREAM_RESET, stream_id=3, service_id='SSH')"
    )
    assert repr(TunnelMessage.data(1, b"x" * 33)) == (
        "TunnelMessage(type=DATA, stream_id=1, payload=<33 bytes>)"
    )
    assert repr(TunnelMessage(42, ignorable=True)) == "TunnelMessage(type=42, ignorable=True)"


def test_builders() -> None:
    assert TunnelMessage.session_reset() == TunnelMessage(MessageType.SESSION_RESET)
    assert TunnelMessage.connection_start(4, 2, "SSH") == TunnelMessage(
        MessageType.CONNECTION_START, stream_id=4, connection_id=2, service_id="SSH"
    )
    assert TunnelMessage.connection_reset(4, 2) == TunnelMessage(
        MessageType.CONNECTION_RESET, stream_id=4, connection_id=2
    )


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (TunnelMessage.data(2**31, b""), "stream_id=2147483648"),
        (TunnelMessage.data(-(2**31) - 1, b""), "stream_id=-2147483649"),
        (TunnelMessage.data(1, b"", connection_id=-1), "connection_id=-1"),
        (TunnelMessage.data(1, b"", connection_id=2**32), "connection_id=4294967296"),
        (TunnelMessage(2**31), "type=2147483648"),
    ],
)
def test_encode_rejects_field_out_of_range(message: TunnelMessage, field: str) -> None:
    with pytest.raises(MessageEncodeError) as info:
        encode_message(message)
    assert info.value.rule == "field-out-of-range"
    assert str(info.value).startswith(f"rule field-out-of-range: {field} does not fit")


def test_encode_rejects_unencodable_service_id() -> None:
    with pytest.raises(MessageEncodeError) as info:
        encode_message(TunnelMessage.data(1, b"", "\ud800"))
    assert info.value.rule == "field-not-encodable"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x22\x05ab", id="truncated-bytes-field"),
        pytest.param(b"\x2a\x02\xff\xfe", id="service-id-not-utf8"),
        pytest.param(b"\x08", id="truncated-varint"),
        pytest.param(b"\x00\x01", id="field-number-zero"),
    ],
)
def test_malformed_message(data: bytes) -> None:
    with pytest.raises(MessageDecodeError) as info:
        decode_message(data)
    assert info.value.rule == "malformed-message"
    assert info.value.value == data
    assert "V3 protocol guide, 'ProtocolBuffers Message Schema'" in str(info.value)


@pytest.mark.parametrize(
    ("extra", "numbers", "described"),
    [
        pytest.param(b"\x40\x05", (8,), "8 (wire type VARINT)", id="varint-field-8"),
        pytest.param(b"\x9a\x06\x01x", (99,), "99 (wire type LEN)", id="len-field-99"),
        pytest.param(
            b"\x12\x01x", (2,), "2 (streamId with wire type LEN)", id="known-field-wrong-wire-type"
        ),
    ],
)
def test_unknown_field_rejected(extra: bytes, numbers: tuple[int, ...], described: str) -> None:
    data = DATA_SSH_BYTES + extra
    with pytest.raises(UnknownFieldError) as info:
        decode_message(data)
    error = info.value
    assert error.rule == "unknown-field"
    assert error.value == numbers
    assert str(error) == (
        f"rule unknown-field: message carries field(s) outside the schema: {described} "
        "(source: protocol guides V1-V3, 'Tunneling message frames' rules)"
    )
    with pytest.raises(UnknownFieldError):
        check_no_unknown_fields(data)


def test_unknown_field_allowed_when_asked() -> None:
    assert decode_message(DATA_SSH_BYTES + b"\x40\x05", allow_unknown_fields=True) == DATA_SSH


def test_check_no_unknown_fields_accepts_schema_fields() -> None:
    check_no_unknown_fields(DATA_SSH_BYTES)


def test_unknown_field_error_is_a_decode_error() -> None:
    assert issubclass(UnknownFieldError, MessageDecodeError)
    assert issubclass(MessageDecodeError, ProtocolError)


@given(tunnel_messages())
def test_encode_decode_round_trip(message: TunnelMessage) -> None:
    assert decode_message(encode_message(message)) == message


@given(st.binary(max_size=64))
def test_decode_arbitrary_bytes_raises_only_protocol_errors(data: bytes) -> None:
    try:
        message = decode_message(data)
    except ProtocolError:
        return
    assert decode_message(encode_message(message)) == message


def test_unknown_field_detected_without_unknown_fields_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_schema, "_UnknownFieldSet", None)
    with pytest.raises(UnknownFieldError) as info:
        decode_message(DATA_SSH_BYTES + b"\x40\x05")
    assert info.value.value == (0,)
    assert "(field numbers not reported by this protobuf runtime)" in str(info.value)
    assert decode_message(DATA_SSH_BYTES) == DATA_SSH


def test_schema_imports_without_unknown_fields_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.protobuf.unknown_fields", None)
    spec = importlib.util.spec_from_file_location("_schema_copy", _schema.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module._UnknownFieldSet is None
    pb = module.new_message()
    pb.ParseFromString(DATA_SSH_BYTES + b"\x40\x05")
    assert module.unknown_field_numbers(pb) == ((0, 0),)
    pb.ParseFromString(DATA_SSH_BYTES)
    assert module.unknown_field_numbers(pb) == ()


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=lambda w: w.__name__)
def test_decode_accepts_buffers(wrap: type[bytes | bytearray | memoryview]) -> None:
    framed = b"\x00\x00" + DATA_SSH_BYTES
    data = wrap(framed)[2:]
    message = decode_message(data)
    assert message == DATA_SSH
    assert type(message.payload) is bytes
    assert type(message.service_id) is str
    check_no_unknown_fields(data)
    with pytest.raises(UnknownFieldError):
        decode_message(wrap(DATA_SSH_BYTES + b"\x40\x05"))


@pytest.mark.parametrize("wrap", [bytearray, memoryview], ids=lambda w: w.__name__)
def test_malformed_buffer_reports_bytes(wrap: type[bytearray | memoryview]) -> None:
    with pytest.raises(MessageDecodeError) as info:
        decode_message(wrap(b"\x08"))
    assert info.value.value == b"\x08"
    assert type(info.value.value) is bytes


@pytest.mark.parametrize("kind", [*MessageType, 8, 42, -1], ids=str)
def test_decoded_message_equals_constructed(kind: int) -> None:
    built = TunnelMessage(
        kind,
        stream_id=-7,
        ignorable=True,
        payload=b"\x00\xff",
        service_id="RDP",
        available_service_ids=("SSH", "RDP"),
        connection_id=2**32 - 1,
    )
    decoded = decode_message(encode_message(built))
    assert decoded == built
    assert hash(decoded) == hash(built)
    assert repr(decoded) == repr(built)
    for field in dataclasses.fields(TunnelMessage):
        value = getattr(decoded, field.name)
        assert type(value) is type(getattr(built, field.name)), field.name
    assert decoded.is_known_type == (kind in set(MessageType))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.stream_id = 1  # type: ignore[misc]


def test_decoded_defaults_are_the_dataclass_defaults() -> None:
    decoded = decode_message(b"")
    assert decoded == TunnelMessage(MessageType.UNKNOWN)
    assert decoded.type is MessageType.UNKNOWN
    assert decoded.available_service_ids == ()
    assert decoded.payload == b""


def test_construction_converts_known_type_values() -> None:
    assert TunnelMessage(1).type is MessageType.DATA
    assert TunnelMessage(True).type is MessageType.DATA
    assert TunnelMessage(42).type == 42
    assert not TunnelMessage(42).is_known_type
    assert TunnelMessage(MessageType.STREAM_START).type is MessageType.STREAM_START
