"""RelayPolicy: the relay of one tunnel as a state machine, events in, actions out."""

from __future__ import annotations

from pytest_securetunnel.protocol import (
    CLOSED,
    DELETED,
    EXPIRED,
    REVOKED,
    SERVICES_CHANGED,
    Close,
    Disconnected,
    Dropped,
    MessageType,
    ProtocolVersion,
    Received,
    RelayAction,
    RelayPolicy,
    Send,
    TunnelConnection,
    TunnelMessage,
    TunnelState,
    Violation,
    encode_frame,
)

V3 = ProtocolVersion.V3
SERVICES = ("SSH",)


def conn(
    mode: str, version: ProtocolVersion = V3, services: tuple[str, ...] = SERVICES
) -> TunnelConnection:
    return TunnelConnection(mode, version, services)


def connect(
    relay: RelayPolicy[str], peer: str, mode: str, **kwargs: object
) -> list[RelayAction[str]]:
    relay.admitted(mode)
    version = kwargs.pop("version", V3)
    services = kwargs.pop("services", SERVICES)
    assert isinstance(version, ProtocolVersion)
    assert isinstance(services, tuple)
    return relay.connected(peer, conn(mode, version, services), **kwargs)  # type: ignore[arg-type]


def pair() -> RelayPolicy[str]:
    relay: RelayPolicy[str] = RelayPolicy()
    connect(relay, "src", "source")
    connect(relay, "dst", "destination")
    return relay


def start(stream_id: int = 1) -> TunnelMessage:
    return TunnelMessage.stream_start(stream_id, "SSH", 1)


def test_a_v3_connection_gets_service_ids_first() -> None:
    relay: RelayPolicy[str] = RelayPolicy()
    assert connect(relay, "src", "source") == [Send("src", TunnelMessage.service_ids(SERVICES))]
    assert relay.peers == {"source": "src"}
    assert not relay.idle


def test_a_v1_connection_gets_nothing_first() -> None:
    relay: RelayPolicy[str] = RelayPolicy()
    assert connect(relay, "src", "source", version=ProtocolVersion.V1, services=()) == []


def test_whole_frame_is_forwarded_unchanged() -> None:
    relay = pair()
    frame = encode_frame(start())
    actions = relay.receive_data("src", frame)
    assert actions == [Received("src", start()), Send("dst", start(), frame)]
    assert actions[1].frame is frame  # type: ignore[union-attr]  # the same bytes, no copy
    # The stream is recorded on both sides: the destination may now send DATA.
    assert relay.connection("dst").streams.active_stream_id("SSH") == 1
    reply = encode_frame(TunnelMessage.data(1, b"hi", "SSH", 1))
    assert relay.receive_data("dst", reply)[1] == Send(
        "src", TunnelMessage.data(1, b"hi", "SSH", 1), reply
    )


def test_frames_split_and_packed_are_forwarded_frame_by_frame() -> None:
    relay = pair()
    data = encode_frame(start()) + encode_frame(TunnelMessage.data(1, b"x", "SSH", 1))
    assert relay.receive_data("src", data[:3]) == []
    actions = relay.receive_data("src", data[3:])
    sent = [a for a in actions if isinstance(a, Send)]
    assert [a.message.type for a in sent] == [MessageType.STREAM_START, MessageType.DATA]
    assert b"".join(a.frame or b"" for a in sent) == data


def test_without_the_other_side_messages_are_dropped() -> None:
    relay: RelayPolicy[str] = RelayPolicy()
    connect(relay, "src", "source")
    assert relay.receive_data("src", encode_frame(start())) == [
        Received("src", start()),
        Dropped("destination", start(), "destination not connected"),
    ]


def test_a_new_connection_replaces_the_old_and_resets_the_peers_streams() -> None:
    relay = pair()
    relay.receive_data("src", encode_frame(start(7)))
    actions = connect(relay, "src2", "source")
    assert actions == [
        Send("src2", TunnelMessage.service_ids(SERVICES)),
        Close("src", 1008, "Replaced by a new source connection"),
        Send("dst", TunnelMessage.stream_reset(7, "SSH")),
    ]
    assert relay.peers["source"] == "src2"
    # The replaced connection's traffic is received but no longer relayed.
    late = TunnelMessage.data(7, b"late", "SSH", 1)
    assert relay.receive_data("src", encode_frame(late)) == [Received("src", late)]
    # Its end does not disconnect the side: the new connection holds it.
    assert relay.disconnected("src") == []


def test_a_reconnect_after_a_drop_resets_the_peers_streams() -> None:
    """The old connection ended before the new one opened: the peer is told at the reconnect.

    A restarted source numbers its streams from 1 again; without the reset, the reference
    destination ignores the new STREAM_START for the stream it still has active.
    """
    relay = pair()
    relay.receive_data("src", encode_frame(start(1)))
    reset = TunnelMessage.connection_reset(1, 1, "SSH")
    relay.receive_data("src", encode_frame(reset))  # the stream stays active, no connection
    assert relay.disconnected("src") == [Disconnected("source")]  # not announced to the peer
    assert relay.connection("dst").streams.active_stream_id("SSH") == 1
    assert connect(relay, "src2", "source") == [
        Send("src2", TunnelMessage.service_ids(SERVICES)),
        Send("dst", TunnelMessage.stream_reset(1, "SSH")),
    ]
    assert relay.connection("dst").streams.active_stream_id("SSH") is None
    assert relay.receive_data("src2", encode_frame(start(1))) == [
        Received("src2", start(1)),
        Send("dst", start(1), encode_frame(start(1))),
    ]


def test_a_destination_reconnect_resets_the_sources_streams() -> None:
    relay = pair()
    relay.receive_data("src", encode_frame(start(3)))
    relay.disconnected("dst")
    assert connect(relay, "dst2", "destination") == [
        Send("dst2", TunnelMessage.service_ids(SERVICES)),
        Send("src", TunnelMessage.stream_reset(3, "SSH")),
    ]


def test_a_sides_first_connection_resets_nothing() -> None:
    relay: RelayPolicy[str] = RelayPolicy()
    connect(relay, "src", "source")
    relay.receive_data("src", encode_frame(start(2)))  # dropped: no destination yet
    assert connect(relay, "dst", "destination") == [
        Send("dst", TunnelMessage.service_ids(SERVICES))
    ]


def test_a_violation_closes_the_offender_and_resets_the_peer() -> None:
    relay = pair()
    relay.receive_data("src", encode_frame(start(3)))
    bad = TunnelMessage.data(0, b"x", "SSH", 1)  # stream id 0
    actions = relay.receive_data("src", encode_frame(bad))
    assert isinstance(actions[0], Violation)
    assert actions[0].peer == "src"
    assert actions[0].error.rule == "stream-id-zero"
    reason = f"stream-id-zero: {actions[0].error.detail}"
    assert actions[1:] == [
        Send("dst", TunnelMessage.stream_reset(3, "SSH")),
        Disconnected("source", 1002, reason),
        Close("src", 1002, reason, True),
    ]
    assert relay.receive_data("src", encode_frame(start(4))) == []  # nothing more
    assert "source" not in relay.peers


def test_messages_before_a_violation_in_the_same_data_are_relayed_first() -> None:
    relay = pair()
    data = encode_frame(start()) + encode_frame(TunnelMessage.data(0, b"x", "SSH", 1))
    actions = relay.receive_data("src", data)
    kinds = [type(action) for action in actions]
    assert kinds == [Received, Send, Violation, Send, Disconnected, Close]
    assert actions[1] == Send("dst", start(), encode_frame(start()))


def test_text_closes_1003_once() -> None:
    relay = pair()
    text = "Text frames are not supported: use binary"
    assert relay.receive_text("src") == [
        Disconnected("source", 1003, text),
        Close("src", 1003, text, True),
    ]
    assert relay.receive_text("src") == []
    assert relay.receive_data("src", encode_frame(start())) == []


def test_connection_opened_on_a_closed_tunnel_or_revoked_token_is_closed() -> None:
    for state, code, reason in [
        (TunnelState.CLOSED, 1000, CLOSED),
        (TunnelState.EXPIRED, 1000, EXPIRED),
        (TunnelState.DELETED, 1000, DELETED),
    ]:
        relay: RelayPolicy[str] = RelayPolicy()
        assert connect(relay, "src", "source", tunnel=state)[-1] == Close("src", code, reason)
    relay = RelayPolicy()
    assert connect(relay, "src", "source", token_valid=False)[-1] == Close("src", 1008, REVOKED)
    assert relay.peers == {}


def test_close_and_expiry_and_deletion_close_both_sides() -> None:
    relay = pair()
    assert relay.tunnel_closed(expired=False) == [
        Disconnected("source", 1000, CLOSED),
        Close("src", 1000, CLOSED),
        Disconnected("destination", 1000, CLOSED),
        Close("dst", 1000, CLOSED),
    ]
    relay = pair()
    assert [a.reason for a in relay.tunnel_closed(expired=True)] == [EXPIRED] * 4  # type: ignore[union-attr]
    relay = pair()
    assert [a.reason for a in relay.tunnel_deleted()] == [DELETED] * 4  # type: ignore[union-attr]


def test_rotation_closes_revoked_and_those_with_other_services() -> None:
    relay = pair()
    assert relay.tokens_rotated(SERVICES, revoked=["dst"]) == [
        Disconnected("destination", 1008, REVOKED),
        Close("dst", 1008, REVOKED),
    ]
    relay = pair()
    assert relay.tokens_rotated(("SSH", "RDP"), revoked=[]) == [
        Disconnected("source", 1008, SERVICES_CHANGED),
        Close("src", 1008, SERVICES_CHANGED),
        Disconnected("destination", 1008, SERVICES_CHANGED),
        Close("dst", 1008, SERVICES_CHANGED),
    ]
    relay = RelayPolicy()
    connect(relay, "v1", "source", version=ProtocolVersion.V1, services=())
    assert relay.tokens_rotated(("SSH",), revoked=[]) == []  # V1 was announced no list


def test_a_side_is_disconnected_once_nothing_holds_it() -> None:
    relay: RelayPolicy[str] = RelayPolicy()
    relay.admitted("source")
    relay.admitted("source")
    assert relay.admission_dropped("source") == []  # another handshake is pending
    relay.connected("src", conn("source"))
    assert relay.disconnected("src") == [Disconnected("source")]
    assert relay.idle
    assert relay.disconnected("src") == []


def test_injected_messages_are_recorded_in_the_stream_state() -> None:
    relay = pair()
    relay.receive_data("src", encode_frame(start(5)))
    assert relay.send("dst", TunnelMessage.stream_reset(5, "SSH")) == Send(
        "dst", TunnelMessage.stream_reset(5, "SSH")
    )
    assert relay.connection("dst").streams.active_stream_id("SSH") is None


def test_a_side_closed_by_the_relay_is_disconnected_before_its_close_and_once() -> None:
    """The side is reported before the close frame goes out: a client that sees its
    connection closed never finds the service still saying CONNECTED.
    """
    relay: RelayPolicy[str] = RelayPolicy()
    connect(relay, "src", "source")
    assert relay.tokens_rotated(("VNC",), revoked=[]) == [
        Disconnected("source", 1008, SERVICES_CHANGED),
        Close("src", 1008, SERVICES_CHANGED),
    ]
    assert relay.idle
    assert relay.disconnected("src", 1008, SERVICES_CHANGED) == []  # reported already


def test_a_relay_close_with_a_handshake_pending_waits_for_it() -> None:
    relay: RelayPolicy[str] = RelayPolicy()
    connect(relay, "src", "source")
    relay.admitted("source")  # a reconnect is in its handshake
    assert relay.close("src", 1011, "boom") == [Close("src", 1011, "boom")]
    assert relay.disconnected("src", 1011, "boom") == []  # the handshake may hold the side
    assert relay.admission_dropped("source") == [Disconnected("source")]


def test_a_replaced_connection_is_not_a_disconnect_and_a_late_close_of_it_neither() -> None:
    relay = pair()
    actions = connect(relay, "src2", "source")
    assert not any(isinstance(action, Disconnected) for action in actions)
    assert relay.close("src", 1011, "late") == [Close("src", 1011, "late")]
    assert relay.disconnected("src") == []
    assert relay.peers["source"] == "src2"
