"""LocalProxyPolicy: a local proxy's per-version decisions, events in, actions out."""

from __future__ import annotations

import pytest

from pytest_securetunnel.protocol import (
    ClientMode,
    ConnectLocal,
    EndLocal,
    Fatal,
    Ignored,
    LocalProxyPolicy,
    MessageType,
    ProtocolVersion,
    SendMessage,
    TunnelMessage,
    WriteLocal,
)

V1, V2, V3 = ProtocolVersion.V1, ProtocolVersion.V2, ProtocolVersion.V3


def policy(mode: str, version: ProtocolVersion = V3, wire_id: str = "SSH") -> LocalProxyPolicy:
    made = LocalProxyPolicy(mode, version)
    made.add_service("ssh", wire_id)
    return made


# -- source ---------------------------------------------------------------------------


def test_v3_source_first_connection_starts_a_stream_then_adds_connections() -> None:
    source = policy("source")
    first, start = source.open_link("ssh", None)
    assert start == TunnelMessage.stream_start(1, "SSH", 1)
    assert (first.stream_id, first.connection_id, first.use_connection_ids) == (1, 1, True)
    second, start2 = source.open_link("ssh", 1)
    assert start2 == TunnelMessage.connection_start(1, 2, "SSH")
    assert source.open_links == 2
    assert source.uses_connection_ids("ssh")
    # Ending a link: CONNECTION_RESET on V3, once.
    assert source.end(second) == TunnelMessage.connection_reset(1, 2, "SSH")
    assert source.end(second) is None
    assert second.data_message(b"x") == TunnelMessage.data(1, b"x", "SSH", 2)


@pytest.mark.parametrize("version", [V1, V2])
def test_v1_v2_source_uses_one_stream_per_connection(version: ProtocolVersion) -> None:
    wire_id = "" if version is V1 else "SSH"
    source = policy("source", version, wire_id)
    assert not source.uses_connection_ids("ssh")
    link, start = source.open_link("ssh", 5)  # an active stream does not matter
    assert start == TunnelMessage.stream_start(1, wire_id, 0)
    assert link.data_message(b"x") == TunnelMessage.data(1, b"x", wire_id, 0)
    assert source.end(link) == TunnelMessage.stream_reset(1, wire_id)
    assert source.open_link("ssh", None)[1].stream_id == 2  # stream ids count up


def test_v3_source_falls_back_to_v2_when_the_peer_sends_no_connection_id() -> None:
    source = policy("source")
    link, _ = source.open_link("ssh", None)
    assert source.receive(TunnelMessage.data(1, b"hi", "SSH", 0)) == [WriteLocal(link, b"hi")]
    assert not link.use_connection_ids
    assert not source.uses_connection_ids("ssh")  # next connections go one at a time
    assert source.end(link) == TunnelMessage.stream_reset(1, "SSH")


def test_stream_and_connection_resets_end_the_links() -> None:
    source = policy("source")
    first, _ = source.open_link("ssh", None)
    second, _ = source.open_link("ssh", 1)
    assert source.receive(TunnelMessage.connection_reset(1, 2, "SSH")) == [EndLocal(second)]
    assert source.receive(TunnelMessage.stream_reset(1, "SSH")) == [EndLocal(first)]
    assert first.ended and second.ended
    assert source.open_links == 0
    assert source.end(first) is None  # the peer already knows


def test_session_reset_ends_every_link() -> None:
    source = policy("source")
    link, _ = source.open_link("ssh", None)
    assert source.receive(TunnelMessage.session_reset()) == [EndLocal(link)]


def test_source_ignores_stream_start() -> None:
    assert policy("source").receive(TunnelMessage.stream_start(1, "SSH", 1)) == []


# -- destination ------------------------------------------------------------------------


def test_destination_connects_on_stream_start_and_answers_a_failure() -> None:
    destination = policy("destination")
    start = TunnelMessage.stream_start(3, "SSH", 1)
    [request] = destination.receive(start)
    assert request == ConnectLocal("ssh", start, True)
    assert isinstance(request, ConnectLocal)
    assert destination.connect_failed(request) == TunnelMessage.stream_reset(3, "SSH")
    link = destination.connected(request)
    assert link.key == (3, 1)
    data = TunnelMessage.data(3, b"x", "SSH", 1)
    assert destination.receive(data) == [WriteLocal(link, b"x")]


def test_destination_v2_peer_stream_uses_no_connection_ids() -> None:
    destination = policy("destination")
    start = TunnelMessage.stream_start(3, "SSH", 0)
    [request] = destination.receive(start)
    assert request == ConnectLocal("ssh", start, False)


def test_destination_new_stream_start_ends_the_current_stream() -> None:
    destination = policy("destination")
    [request] = destination.receive(TunnelMessage.stream_start(1, "SSH", 1))
    old = destination.connected(request)  # type: ignore[arg-type]
    start = TunnelMessage.stream_start(2, "SSH", 1)
    assert destination.receive(start) == [EndLocal(old), ConnectLocal("ssh", start, True)]


def test_destination_connection_start() -> None:
    destination = policy("destination")
    [request] = destination.receive(TunnelMessage.stream_start(1, "SSH", 1))
    destination.connected(request)  # type: ignore[arg-type]
    start = TunnelMessage.connection_start(1, 2, "SSH")
    [second] = destination.receive(start)
    assert second == ConnectLocal("ssh", start, True)
    assert destination.connect_failed(second) == TunnelMessage.connection_reset(1, 2, "SSH")
    link = destination.connected(second)
    # V3 guide: CONNECTION_START for an open connection id is an error: reset it.
    assert destination.receive(start) == [
        EndLocal(link),
        SendMessage(TunnelMessage.connection_reset(1, 2, "SSH")),
    ]


def test_v1_peer_without_service_id_reaches_the_only_service() -> None:
    destination = policy("destination", V1, "")
    start = TunnelMessage.stream_start(1, "", 0)
    assert destination.receive(start) == [ConnectLocal("ssh", start, False)]


# -- unknown and unmapped ---------------------------------------------------------------


def test_v2_client_answers_connection_start_with_stream_reset() -> None:
    destination = policy("destination", V2)
    [request] = destination.receive(TunnelMessage.stream_start(1, "SSH", 0))
    link = destination.connected(request)  # type: ignore[arg-type]
    assert destination.receive(TunnelMessage.connection_start(1, 2, "SSH")) == [
        EndLocal(link),
        SendMessage(TunnelMessage.stream_reset(1, "SSH")),
    ]


def test_unmapped_service_is_ignored_and_unknown_type_is_fatal() -> None:
    destination = policy("destination")
    message = TunnelMessage.stream_start(1, "RDP", 1)
    assert destination.receive(message) == [Ignored(message, "no mapping for its service id")]
    unknown = TunnelMessage(type=99)
    assert unknown.type not in V3.message_types
    assert destination.receive(unknown) == [
        Fatal(f"Unexpected message type {unknown.type_name} (not ignorable)")
    ]
    assert destination.receive(TunnelMessage(type=99, ignorable=True)) == []


def test_end_all_ends_every_link() -> None:
    source = LocalProxyPolicy(ClientMode.SOURCE, V3)
    source.add_service("a", "A")
    source.add_service("b", "B")
    links = [source.open_link("a", None)[0], source.open_link("b", None)[0]]
    assert source.end_all() == links
    assert all(link.ended for link in links)
    assert source.open_links == 0
    assert MessageType.STREAM_RESET in V3.message_types
