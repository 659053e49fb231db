"""TunnelClient: streams, data, resets, splitting, stale messages, waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_tunnel_server import FakeTunnelServer

from pytest_securetunnel.client import (
    TunnelClient,
    TunnelClientError,
    TunnelClosedError,
    message_matcher,
)
from pytest_securetunnel.protocol import (
    MAX_PAYLOAD_SIZE,
    MessageType,
    ProtocolVersion,
    TunnelMessage,
)

Pair = tuple[TunnelClient, TunnelClient]


async def connect_pair(
    server: FakeTunnelServer,
    source_version: ProtocolVersion = ProtocolVersion.V3,
    destination_version: ProtocolVersion = ProtocolVersion.V3,
) -> Pair:
    destination = await TunnelClient.connect(
        server.endpoint, "destination-token", "destination", version=destination_version
    )
    source = await TunnelClient.connect(
        server.endpoint, "source-token", "source", version=source_version
    )
    return source, destination


@pytest.fixture
async def pair(server: FakeTunnelServer) -> AsyncIterator[Pair]:
    source, destination = await connect_pair(server)
    async with source, destination:
        yield source, destination


async def test_stream_start_data_and_reset(pair: Pair) -> None:
    source, destination = pair
    stream_id = await source.start_stream("SSH")
    assert stream_id == 1
    start = await destination.receive()
    assert start == TunnelMessage.stream_start(1, "SSH", 1)
    assert destination.active_streams == {"SSH": 1}

    await source.send(b"ping", service_id="SSH")
    assert await destination.receive_data("SSH") == b"ping"
    await destination.send(b"pong", service_id="SSH")
    assert await source.receive_data("SSH") == b"pong"

    await source.reset_stream(service_id="SSH")
    assert await destination.receive() == TunnelMessage.stream_reset(1, "SSH")
    assert destination.active_streams == {}
    assert await source.start_stream("SSH") == 2  # localproxy: stream ids count up
    directions = [(r.direction, r.message.type_name) for r in source.messages]
    assert directions == [
        ("received", "SERVICE_IDS"),
        ("sent", "STREAM_START"),
        ("sent", "DATA"),
        ("received", "DATA"),
        ("sent", "STREAM_RESET"),
        ("sent", "STREAM_START"),
    ]


async def test_large_payload_is_split(pair: Pair, server: FakeTunnelServer) -> None:
    source, destination = pair
    await source.start_stream("SSH")
    payload = bytes(range(256)) * 600  # 153600 bytes
    await source.send(payload, service_id="SSH")
    received = await server.wait_received(4, "source")
    sizes = [len(m.payload) for m in received[1:]]
    assert sizes == [MAX_PAYLOAD_SIZE, MAX_PAYLOAD_SIZE, len(payload) - 2 * MAX_PAYLOAD_SIZE]
    chunks = [await destination.receive_data("SSH") for _ in sizes]
    assert b"".join(chunks) == payload


async def test_v3_several_connections(pair: Pair) -> None:
    source, destination = pair
    stream_id = await source.start_stream("HTTP")
    assert await source.start_connection(service_id="HTTP") == 2
    assert await source.start_connection(stream_id, 7, "HTTP") == 7
    assert await source.start_connection(service_id="HTTP") == 8
    for connection_id in (1, 2, 7, 8):
        await source.send(
            f"c{connection_id}".encode(), service_id="HTTP", connection_id=connection_id
        )
    await destination.wait_for(MessageType.DATA, connection_id=8)
    assert destination.connection_ids("HTTP") == {1, 2, 7, 8}
    assert await destination.receive_data("HTTP", connection_id=7) == b"c7"
    assert await destination.receive_data("HTTP", connection_id=1) == b"c1"

    await source.reset_connection(connection_id=2, service_id="HTTP")
    reset = await destination.wait_for(MessageType.CONNECTION_RESET)
    assert reset == TunnelMessage.connection_reset(stream_id, 2, "HTTP")
    assert destination.connection_ids("HTTP") == {1, 7, 8}


async def test_destination_drops_stale_stream_messages(
    pair: Pair, server: FakeTunnelServer
) -> None:
    _, destination = pair
    await server.send(
        "destination",
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.data(1, b"old", "SSH", 1),
        TunnelMessage.stream_start(2, "SSH", 1),
        TunnelMessage.data(1, b"stale", "SSH", 1),
        TunnelMessage.stream_reset(1, "SSH"),
        TunnelMessage.data(9, b"unknown stream", "HTTP", 1),
        TunnelMessage.data(2, b"new", "SSH", 1),
        together=True,
    )
    await destination.wait_for(lambda m: m.payload == b"new")
    assert destination.active_streams == {"SSH": 2}
    assert [await destination.receive_data() for _ in range(2)] == [b"old", b"new"]
    dropped = [r.message for r in destination.messages if r.dropped]
    assert [m.payload or m.type_name for m in dropped] == [
        b"stale",
        "STREAM_RESET",
        b"unknown stream",
    ]
    with pytest.raises(TimeoutError):
        await destination.wait_for(lambda m: m.payload == b"stale", timeout=0.01)


async def test_drop_stale_can_be_turned_off(server: FakeTunnelServer) -> None:
    async with await TunnelClient.connect(
        server.endpoint, "destination-token", "destination", drop_stale=False
    ) as destination:
        await server.send("destination", TunnelMessage.data(5, b"x", "SSH", 1))
        assert await destination.receive_data() == b"x"


async def test_receive_data_filters_and_leaves_other_messages(
    pair: Pair, server: FakeTunnelServer
) -> None:
    _, destination = pair
    await server.send(
        "destination",
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.stream_start(1, "HTTP", 1),
        TunnelMessage.data(1, b"ssh", "SSH", 1),
        TunnelMessage.data(1, b"http", "HTTP", 1),
    )
    assert await destination.receive_data("HTTP") == b"http"
    types = [(await destination.receive()).type for _ in range(3)]
    assert types == [MessageType.STREAM_START, MessageType.STREAM_START, MessageType.DATA]


async def test_wait_for_does_not_consume_and_honours_since(pair: Pair) -> None:
    source, destination = pair
    await source.start_stream("SSH")
    await source.send(b"one", service_id="SSH")
    first = await destination.wait_for(MessageType.DATA, service_id="SSH")
    assert first.payload == b"one"
    mark = len(destination.messages)
    await source.send(b"two", service_id="SSH")
    later = await destination.wait_for(MessageType.DATA, since=mark)
    assert later.payload == b"two"
    assert await destination.receive() == TunnelMessage.stream_start(1, "SSH", 1)
    assert await destination.receive_data() == b"one"
    with pytest.raises(TimeoutError, match=r"no matching message within 0\.01 s"):
        await destination.wait_for(message_matcher(stream_id=42), timeout=0.01)


async def test_async_iteration_ends_when_closed(pair: Pair, server: FakeTunnelServer) -> None:
    source, destination = pair
    await source.start_stream("SSH")
    await source.send(b"last", service_id="SSH")
    await destination.wait_for(MessageType.DATA)
    await server.close_client("destination", 1000, "Tunnel closed")
    seen = [message.type async for message in destination]
    assert seen == [MessageType.STREAM_START, MessageType.DATA]
    assert (destination.close_code, destination.close_reason) == (1000, "Tunnel closed")
    with pytest.raises(TunnelClosedError, match="Tunnel closed"):
        await destination.send(b"late", service_id="SSH")


async def test_sending_needs_an_active_stream(pair: Pair) -> None:
    source, _ = pair
    with pytest.raises(TunnelClientError, match="no active stream for service id 'SSH'"):
        await source.send(b"x", service_id="SSH")


async def test_version_specific_fields(server: FakeTunnelServer) -> None:
    source, destination = await connect_pair(
        server, ProtocolVersion.V2, destination_version=ProtocolVersion.V1
    )
    async with source, destination:
        with pytest.raises(ValueError, match="CONNECTION_START is not part of the V2"):
            await source.start_connection(1, 2, "SSH")
        with pytest.raises(ValueError, match="V1 protocol guide: messages carry no service id"):
            await destination.start_stream("SSH")
        await source.start_stream("SSH", connection_id=5)
        sent = [r.message for r in source.messages if r.direction == "sent"]
        assert sent == [TunnelMessage.stream_start(1, "SSH")]  # no connection id on V2
        # A V1 client reads messages without the V2 fields.
        assert await destination.receive() == TunnelMessage.stream_start(1)
        await source.send(b"v2", service_id="SSH")
        assert await destination.receive_data("") == b"v2"
        await destination.send(b"v1")
        assert await source.receive_data() == b"v1"


async def test_unparsable_frame_closes_with_1002(pair: Pair, server: FakeTunnelServer) -> None:
    _, destination = pair
    await server.connections["destination"].send(b"\x00\x03\xff\xff\xff")
    await destination.wait_closed()
    assert destination.close_code == 1002
    assert destination.error is not None
    with pytest.raises(TunnelClosedError) as info:
        await destination.receive()
    assert info.value.__cause__ is destination.error


async def test_oversized_payload_needs_opt_in(pair: Pair, server: FakeTunnelServer) -> None:
    source, _ = pair
    big = TunnelMessage.data(1, b"x" * (MAX_PAYLOAD_SIZE + 1), "SSH", 1)
    with pytest.raises(Exception, match="payload-too-large"):
        await source.send_message(big)
    await source.send_message(big, enforce_payload_limit=False)
    (received,) = await server.wait_received(1, "source")
    assert len(received.payload) == MAX_PAYLOAD_SIZE + 1
