"""TunnelConnection: the service side of one client connection."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_protocol import noisy_chunks

from pytest_securetunnel.protocol import (
    ClientMode,
    MessageDecodeError,
    MessageType,
    ProtocolError,
    ProtocolVersion,
    RuleViolation,
    TunnelConnection,
    TunnelMessage,
    UnknownFieldError,
    UnsupportedSubprotocolError,
    encode_frame,
    encode_message,
)


def frames(*messages: TunnelMessage) -> bytes:
    return b"".join(encode_frame(m, enforce_payload_limit=False) for m in messages)


def source(
    version: ProtocolVersion | str = ProtocolVersion.V3, services: tuple[str, ...] = ("SSH",)
) -> TunnelConnection:
    return TunnelConnection("source", version, services)


def destination(
    version: ProtocolVersion | str = ProtocolVersion.V3, services: tuple[str, ...] = ("SSH",)
) -> TunnelConnection:
    return TunnelConnection(ClientMode.DESTINATION, version, services)


def test_construction_accepts_strings() -> None:
    conn = TunnelConnection("SOURCE", "aws.iot.securetunneling-2.0", ["SSH", "VNC"])
    assert conn.mode is ClientMode.SOURCE
    assert conn.version is ProtocolVersion.V2
    assert conn.services == ("SSH", "VNC")
    assert conn.error is None
    assert repr(conn) == (
        "TunnelConnection(mode='source', version='aws.iot.securetunneling-2.0', "
        "services=('SSH', 'VNC'), open)"
    )


def test_construction_rejects_unknown_subprotocol() -> None:
    with pytest.raises(UnsupportedSubprotocolError):
        TunnelConnection("source", "aws.iot.securetunneling-9.0")


@pytest.mark.parametrize("version", [ProtocolVersion.V2, ProtocolVersion.V3])
def test_service_ids_message_v2_v3(version: ProtocolVersion) -> None:
    conn = source(version, ("SSH", "VNC"))
    assert conn.service_ids_message() == TunnelMessage(
        MessageType.SERVICE_IDS, available_service_ids=("SSH", "VNC")
    )
    assert destination(version, ()).service_ids_message() == TunnelMessage(MessageType.SERVICE_IDS)


def test_service_ids_message_none_for_v1() -> None:
    assert source(ProtocolVersion.V1).service_ids_message() is None


def test_v3_source_flow_relays_every_message() -> None:
    conn = source()
    flow = [
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.data(1, b"ssh hello", "SSH", 1),
        TunnelMessage.connection_start(1, 2, "SSH"),
        TunnelMessage.data(1, b"second", "SSH", 2),
        TunnelMessage.connection_reset(1, 2, "SSH"),
    ]
    assert conn.receive_data(frames(*flow)) == flow
    assert conn.streams.active_streams == {"SSH": 1}
    assert conn.streams.connection_ids("SSH") == {1}
    assert conn.receive_data(frames(TunnelMessage.stream_reset(1, "SSH"))) == [
        TunnelMessage.stream_reset(1, "SSH")
    ]
    assert conn.streams.active_streams == {}


def test_receive_data_reassembles_split_frames() -> None:
    conn = source()
    data = frames(TunnelMessage.stream_start(1, "SSH", 1), TunnelMessage.data(1, b"abc", "SSH", 1))
    out = []
    for index in range(len(data)):
        out += conn.receive_data(data[index : index + 1])
    assert out == [
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.data(1, b"abc", "SSH", 1),
    ]


def test_buffered_counts_a_partial_frame() -> None:
    conn = source()
    data = frames(TunnelMessage.stream_start(1, "SSH", 1), TunnelMessage.data(1, b"abc", "SSH", 1))
    assert conn.buffered == 0
    assert conn.receive_data(data[:-3]) == [TunnelMessage.stream_start(1, "SSH", 1)]
    first = len(frames(TunnelMessage.stream_start(1, "SSH", 1)))
    assert conn.buffered == len(data) - 3 - first
    assert conn.receive_data(memoryview(data)[-3:]) == [TunnelMessage.data(1, b"abc", "SSH", 1)]
    assert conn.buffered == 0


def test_destination_data_needs_stream_start_relayed_to_it() -> None:
    conn = destination()
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(TunnelMessage.data(1, b"reply", "SSH", 1)))
    assert info.value.rule == "data-before-stream-start"

    conn = destination()
    conn.note_sent(TunnelMessage.stream_start(1, "SSH", 1))
    assert conn.receive_data(frames(TunnelMessage.data(1, b"reply", "SSH", 1))) == [
        TunnelMessage.data(1, b"reply", "SSH", 1)
    ]


def test_destination_stream_start_fails_connection() -> None:
    conn = destination()
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(TunnelMessage.stream_start(1, "SSH", 1)))
    assert info.value.rule == "stream-start-from-destination"
    assert conn.error is info.value


def test_send_records_and_encodes() -> None:
    conn = destination()
    message = TunnelMessage.stream_start(7, "SSH", 1)
    assert conn.send(message) == encode_frame(message)
    assert conn.streams.active_streams == {"SSH": 7}


def test_violation_reports_messages_accepted_before_it() -> None:
    conn = source()
    good = [TunnelMessage.stream_start(1, "SSH", 1), TunnelMessage.data(1, b"a", "SSH", 1)]
    bad = TunnelMessage.data(0, b"b", "SSH", 1)
    after = TunnelMessage.data(1, b"c", "SSH", 1)
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(*good, bad, after))
    assert info.value.rule == "stream-id-zero"
    assert info.value.accepted == tuple(good)


def test_receive_frames_gives_each_frame_as_received() -> None:
    conn = source()
    start = frames(TunnelMessage.stream_start(1, "SSH", 1))
    # DATA with its fields in reverse order: valid, but not how encode_frame writes it.
    body = b"\x38\x01\x2a\x03SSH\x22\x02hi\x10\x01\x08\x01"
    reordered = len(body).to_bytes(2, "big") + body
    stream = start + reordered
    assert conn.receive_frames(stream[:3]) == []
    cut = len(start) + 3
    assert conn.receive_frames(stream[3:cut]) == [(TunnelMessage.stream_start(1, "SSH", 1), start)]
    assert conn.receive_frames(stream[cut:]) == [
        (TunnelMessage.data(1, b"hi", "SSH", 1), reordered)
    ]


def test_violation_reports_frames_accepted_before_it() -> None:
    conn = source()
    good = [TunnelMessage.stream_start(1, "SSH", 1), TunnelMessage.data(1, b"a", "SSH", 1)]
    with pytest.raises(RuleViolation) as info:
        conn.receive_frames(frames(*good, TunnelMessage.data(0, b"b", "SSH", 1)))
    assert info.value.accepted == tuple(good)
    assert info.value.accepted_frames == tuple(frames(m) for m in good)


def test_failed_connection_refuses_more_data() -> None:
    conn = source()
    with pytest.raises(RuleViolation):
        conn.receive_data(frames(TunnelMessage.session_reset()))
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(frames(TunnelMessage.stream_start(1, "SSH", 1)))
    assert info.value.rule == "connection-failed"
    assert info.value.value == "session-reset-from-client"
    assert info.value.accepted == ()
    assert repr(conn).endswith(", failed)")


def test_unknown_field_fails_connection() -> None:
    body = encode_message(TunnelMessage.stream_start(1, "SSH", 1)) + b"\x40\x01"
    conn = source()
    with pytest.raises(UnknownFieldError) as info:
        conn.receive_data(len(body).to_bytes(2, "big") + body)
    assert info.value.rule == "unknown-field"
    assert conn.error is info.value


def test_malformed_frame_fails_connection() -> None:
    conn = source()
    with pytest.raises(MessageDecodeError) as info:
        conn.receive_data(b"\x00\x01\x08")
    assert info.value.rule == "malformed-message"


def test_ignorable_unknown_type_is_relayed() -> None:
    message = TunnelMessage(8, ignorable=True, payload=b"future")
    assert source().receive_data(frames(message)) == [message]


def test_payload_too_large_fails_connection() -> None:
    conn = source()
    conn.receive_data(frames(TunnelMessage.stream_start(1, "SSH", 1)))
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(TunnelMessage.data(1, b"\x00" * 64513, "SSH", 1)))
    assert info.value.rule == "payload-too-large"


def test_v1_stream_without_service_id() -> None:
    conn = source(ProtocolVersion.V1, ("SSH",))
    flow = [TunnelMessage.stream_start(1), TunnelMessage.data(1, b"x")]
    assert conn.receive_data(frames(*flow)) == flow
    assert conn.streams.active_streams == {"": 1}
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(TunnelMessage.data(1, b"x", "SSH")))
    assert info.value.rule == "field-not-in-version"


def test_v2_source_may_not_add_service_id_after_empty_stream() -> None:
    conn = source(ProtocolVersion.V2)
    conn.receive_data(frames(TunnelMessage.stream_start(1)))
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(TunnelMessage.stream_start(2, "SSH")))
    assert info.value.rule == "service-id-after-empty-stream"


def test_v1_mode_destination_switches_to_service_id_stream() -> None:
    conn = destination(ProtocolVersion.V2)
    conn.note_sent(TunnelMessage.stream_start(1))
    assert conn.receive_data(frames(TunnelMessage.data(1, b"v1"))) == [TunnelMessage.data(1, b"v1")]
    conn.note_sent(TunnelMessage.stream_start(2, "SSH"))
    assert conn.receive_data(frames(TunnelMessage.data(2, b"v2", "SSH"))) == [
        TunnelMessage.data(2, b"v2", "SSH")
    ]


def test_v3_connection_id_zero_is_connection_one() -> None:
    conn = source()
    flow = [TunnelMessage.stream_start(1, "SSH"), TunnelMessage.data(1, b"x", "SSH")]
    assert conn.receive_data(frames(*flow)) == flow
    assert conn.streams.connection_ids("SSH") == {1}


def test_connection_start_needs_v3() -> None:
    conn = source(ProtocolVersion.V2)
    conn.receive_data(frames(TunnelMessage.stream_start(1, "SSH")))
    with pytest.raises(RuleViolation) as info:
        conn.receive_data(frames(TunnelMessage.connection_start(1, 2, "SSH")))
    assert info.value.rule == "type-not-in-version"


def test_stream_reset_messages_for_active_streams() -> None:
    conn = destination(ProtocolVersion.V3, ("SSH", "VNC"))
    conn.note_sent(TunnelMessage.stream_start(3, "SSH", 1))
    conn.note_sent(TunnelMessage.stream_start(5, "VNC", 1))
    conn.note_sent(TunnelMessage.stream_reset(5, "VNC"))
    conn.note_sent(TunnelMessage.stream_start(6, "VNC", 1))
    assert conn.stream_reset_messages() == [
        TunnelMessage.stream_reset(3, "SSH"),
        TunnelMessage.stream_reset(6, "VNC"),
    ]
    for message in conn.stream_reset_messages():
        conn.note_sent(message)
    assert conn.stream_reset_messages() == []


def test_session_reset_relayed_to_client_ends_streams() -> None:
    conn = destination()
    conn.note_sent(TunnelMessage.stream_start(3, "SSH", 1))
    conn.note_sent(TunnelMessage.session_reset())
    assert conn.stream_reset_messages() == []


@settings(max_examples=300)
@given(st.sampled_from(ClientMode), st.sampled_from(ProtocolVersion), noisy_chunks)
def test_arbitrary_bytes_raise_only_protocol_errors(
    mode: ClientMode, version: ProtocolVersion, chunks: list[bytes]
) -> None:
    conn = TunnelConnection(mode, version, ("SSH",))
    for chunk in chunks:
        try:
            conn.receive_data(chunk)
        except ProtocolError:
            assert conn.error is not None
