"""TunnelClientPolicy: a tunnel client's decisions, WebSocket messages in, messages out."""

from __future__ import annotations

import pytest

from pytest_securetunnel.protocol import (
    MAX_PAYLOAD_SIZE,
    CloseConnection,
    MessageRecord,
    MessageType,
    ProtocolError,
    ProtocolVersion,
    RuleViolation,
    TunnelClientPolicy,
    TunnelMessage,
    encode_frame,
)

V1, V2, V3 = ProtocolVersion.V1, ProtocolVersion.V2, ProtocolVersion.V3


def frames(*messages: TunnelMessage) -> bytes:
    return b"".join(encode_frame(message) for message in messages)


def take_all(policy: TunnelClientPolicy) -> list[TunnelMessage]:
    taken = []
    while (message := policy.take(lambda _: True)) is not None:
        taken.append(message)
    return taken


def test_service_ids_are_recorded_and_not_queued() -> None:
    policy = TunnelClientPolicy("destination", V3)
    assert policy.receive_frame(frames(TunnelMessage.service_ids(["SSH", "HTTP"]))) is None
    assert policy.service_ids == ("SSH", "HTTP")
    assert take_all(policy) == []
    assert policy.log == [MessageRecord("received", TunnelMessage.service_ids(["SSH", "HTTP"]))]


def test_destination_tracks_received_stream_and_drops_stale_messages() -> None:
    policy = TunnelClientPolicy("destination", V3)
    start = TunnelMessage.stream_start(3, "SSH", 1)
    stale = TunnelMessage.data(2, b"old", "SSH", 1)
    fresh = TunnelMessage.data(3, b"new", "SSH", 1)
    policy.receive_frame(frames(start, stale) + frames(fresh)[:5])
    policy.receive_frame(frames(fresh)[5:])  # a frame cut across WebSocket messages
    assert policy.active_streams == {"SSH": 3}
    assert policy.connection_ids("SSH") == frozenset({1})
    assert take_all(policy) == [start, fresh]
    assert [(r.message, r.dropped) for r in policy.log] == [
        (start, False),
        (stale, True),
        (fresh, False),
    ]


def test_stale_messages_are_queued_when_not_dropping() -> None:
    policy = TunnelClientPolicy("destination", V3, drop_stale=False)
    stale = TunnelMessage.data(9, b"x", "SSH", 1)
    policy.receive_frame(frames(stale))
    assert policy.is_stale(stale)
    assert take_all(policy) == [stale]
    assert policy.log == [MessageRecord("received", stale, False)]


def test_source_ignores_a_received_stream_start_for_tracking() -> None:
    policy = TunnelClientPolicy("source", V3)
    policy.receive_frame(frames(TunnelMessage.stream_start(1, "SSH", 1)))
    assert policy.active_streams == {}


def test_v1_peer_messages_belong_to_the_only_active_stream() -> None:
    policy = TunnelClientPolicy("destination", V3)
    policy.receive_frame(frames(TunnelMessage.stream_start(1, "SSH", 1)))
    without_service = TunnelMessage.data(1, b"v1", "", 0)
    policy.receive_frame(frames(without_service))
    assert not policy.is_stale(without_service)
    assert take_all(policy)[-1] == without_service


def test_messages_read_at_the_client_version() -> None:
    v1 = TunnelClientPolicy("destination", V1)
    v1.receive_frame(frames(TunnelMessage.stream_start(1, "SSH", 4)))
    assert v1.log[0].message == TunnelMessage.stream_start(1, "", 0)
    assert v1.active_streams == {"": 1}
    v2 = TunnelClientPolicy("destination", V2)
    v2.receive_frame(frames(TunnelMessage.stream_start(1, "SSH", 4)))
    assert v2.log[0].message == TunnelMessage.stream_start(1, "SSH", 0)


def test_text_message_closes_with_1003() -> None:
    policy = TunnelClientPolicy("source", V3)
    assert policy.receive_frame("hello") == CloseConnection(
        1003, "text frames are not tunneling frames"
    )


def test_unparsable_frame_keeps_earlier_messages_and_closes_with_1002() -> None:
    policy = TunnelClientPolicy("destination", V3)
    start = TunnelMessage.stream_start(1, "SSH", 1)
    close = policy.receive_frame(frames(start) + b"\x00\x03\xff\xff\xff")
    assert close is not None
    assert (close.code, close.reason) == (1002, "Could not parse web socket binary frame")
    assert isinstance(close.error, ProtocolError)
    assert take_all(policy) == [start]


def test_source_stream_ids_count_up_per_service_and_track_sent_messages() -> None:
    policy = TunnelClientPolicy("source", V3)
    first = policy.stream_start("SSH")
    assert first == TunnelMessage.stream_start(1, "SSH", 1)
    policy.sending(first)
    assert policy.active_stream_id("SSH") == 1
    assert policy.stream_start("SSH") == TunnelMessage.stream_start(2, "SSH", 1)
    assert policy.stream_start("HTTP").stream_id == 1
    assert policy.log == [MessageRecord("sent", first)]


def test_connection_start_takes_the_next_unused_id() -> None:
    policy = TunnelClientPolicy("source", V3)
    policy.sending(policy.stream_start("SSH"))
    second = policy.connection_start(1, None, "SSH")
    assert second == TunnelMessage.connection_start(1, 2, "SSH")
    policy.sending(second)
    policy.sending(policy.connection_start(1, 7, "SSH"))
    assert policy.connection_start(1, None, "SSH").connection_id == 8
    assert policy.connection_ids("SSH") == frozenset({1, 2, 7})
    policy.sending(policy.connection_reset(1, 2, "SSH"))
    assert policy.connection_ids("SSH") == frozenset({1, 7})


def test_stream_for_defaults_to_the_active_stream() -> None:
    policy = TunnelClientPolicy("source", V3)
    assert policy.stream_for(None, "SSH") is None
    assert policy.stream_for(5, "SSH") == 5
    policy.sending(policy.stream_start("SSH"))
    assert policy.stream_for(None, "SSH") == 1
    policy.sending(policy.stream_reset(1, "SSH"))
    assert policy.stream_for(None, "SSH") is None


def test_data_is_cut_at_the_payload_limit_and_ids_fit_the_version() -> None:
    policy = TunnelClientPolicy("source", V2)
    chunks = policy.data(b"z" * (MAX_PAYLOAD_SIZE + 1), 1, "SSH", 3)
    assert [len(chunk.payload) for chunk in chunks] == [MAX_PAYLOAD_SIZE, 1]
    assert {chunk.connection_id for chunk in chunks} == {0}  # V2: no connection ids
    assert policy.data(b"", 1, "SSH", 1) == []


def test_version_rules_for_sent_ids() -> None:
    v1 = TunnelClientPolicy("source", V1)
    with pytest.raises(ValueError, match="V1 protocol guide: messages carry no service id"):
        v1.stream_start("SSH")
    v2 = TunnelClientPolicy("source", V2)
    with pytest.raises(ValueError, match="CONNECTION_START is not part of the V2 protocol guide"):
        v2.connection_start(1, None, "SSH")
    with pytest.raises(ValueError, match="CONNECTION_RESET is not part of the V2 protocol guide"):
        v2.connection_reset(1, 2, "SSH")


def test_encode_checks_every_message_before_any_is_sent() -> None:
    policy = TunnelClientPolicy("source", V3)
    big = TunnelMessage.data(1, b"x" * (MAX_PAYLOAD_SIZE + 1), "SSH", 1)
    with pytest.raises(RuleViolation, match="payload-too-large"):
        policy.encode([TunnelMessage.data(1, b"ok", "SSH", 1), big])
    assert len(policy.encode([big], enforce_payload_limit=False)) == 1
    assert policy.log == []


def test_find_and_take_and_close() -> None:
    policy = TunnelClientPolicy("destination", V3)
    start = TunnelMessage.stream_start(1, "SSH", 1)
    data = TunnelMessage.data(1, b"d", "SSH", 1)
    policy.receive_frame(frames(start, data))
    is_data = lambda m: m.type == MessageType.DATA  # noqa: E731
    assert policy.find(is_data, 0) == data
    assert policy.find(is_data, 2) is None
    assert policy.take(is_data) == data
    assert policy.find(is_data, 0) == data  # the log keeps what was taken
    policy.connection_closed()
    assert policy.closed
    assert take_all(policy) == [start]
