"""LocalProxy pairs moving real TCP traffic through the fake tunneling server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fake_tunnel_server import FakeTunnelServer
from helpers_client import (
    app_address,
    echo_exchange,
    http_get,
    open_fds,
    start_echo_app,
    start_http_app,
)

from pytest_securetunnel.client import LocalProxy, LocalProxyError
from pytest_securetunnel.protocol import MessageType, ProtocolVersion, TunnelMessage

V1, V2, V3 = ProtocolVersion.V1, ProtocolVersion.V2, ProtocolVersion.V3


@pytest.fixture
async def echo_app() -> AsyncIterator[asyncio.Server]:
    async with await start_echo_app() as app:
        yield app


@pytest.fixture
async def http_app() -> AsyncIterator[asyncio.Server]:
    async with await start_http_app() as app:
        yield app


def proxies(
    server: FakeTunnelServer,
    targets: dict[str, str],
    source_version: ProtocolVersion = V3,
    destination_version: ProtocolVersion = V3,
) -> tuple[LocalProxy, LocalProxy]:
    destination = LocalProxy(
        server.endpoint, "destination-token", "destination", targets, version=destination_version
    )
    source = LocalProxy(server.endpoint, "source-token", "source", version=source_version)
    return source, destination


async def test_several_services_and_simultaneous_connections(
    server: FakeTunnelServer, echo_app: asyncio.Server, http_app: asyncio.Server
) -> None:
    targets = {"SSH": app_address(echo_app), "HTTP": app_address(http_app)}
    source, destination = proxies(server, targets)
    async with destination, source:
        assert set(source.ports) == {"SSH", "HTTP"}
        payloads = [bytes([n]) * (100_000 + n) for n in range(4)]
        replies = await asyncio.gather(
            *(echo_exchange(source.ports["SSH"], p) for p in payloads),
            http_get(source.ports["HTTP"], "/a"),
            http_get(source.ports["HTTP"], "/b"),
        )
        assert replies[:4] == payloads
        assert replies[4].endswith(b"\r\n\r\nGET /a HTTP/1.0")
        assert replies[5].endswith(b"\r\n\r\nGET /b HTTP/1.0")
        assert source.client is not None
        sent = [r.message for r in source.client.messages if r.direction == "sent"]
        ssh_starts = [m for m in sent if m.service_id == "SSH" and m.type_name.endswith("START")]
        assert [m.type for m in ssh_starts] == [MessageType.STREAM_START] + [
            MessageType.CONNECTION_START
        ] * 3
        assert sorted(m.connection_id for m in ssh_starts) == [1, 2, 3, 4]
        assert {m.stream_id for m in ssh_starts} == {1}


@pytest.mark.parametrize(
    ("source_version", "destination_version"),
    [(V1, V1), (V2, V2), (V3, V3), (V3, V2), (V2, V3), (V1, V3), (V3, V1)],
    ids=lambda v: v.name,
)
async def test_version_combinations(
    echo_app: asyncio.Server,
    source_version: ProtocolVersion,
    destination_version: ProtocolVersion,
) -> None:
    async with FakeTunnelServer(["SSH"]) as server:
        source, destination = proxies(
            server, {"SSH": app_address(echo_app)}, source_version, destination_version
        )
        async with destination, source:
            for payload in (b"first connection", b"second connection"):
                assert await echo_exchange(source.port, payload) == payload

            def resets() -> list[TunnelMessage] | None:
                found = [m for mode, m in server.received if mode == "source"]
                found = [m for m in found if m.type_name.endswith("RESET")]
                return found if len(found) == 2 else None

            sent_resets = await server.wait_until(resets)
            if source_version is V3 and destination_version is V3:
                # One stream; each closed connection sends CONNECTION_RESET.
                assert [m.type for m in sent_resets] == [MessageType.CONNECTION_RESET] * 2
                assert [(m.stream_id, m.connection_id) for m in sent_resets] == [(1, 1), (1, 2)]
            else:
                # V1/V2, or V3 falling back to V2 for a peer without connection ids.
                assert [(m.type, m.stream_id) for m in sent_resets] == [
                    (MessageType.STREAM_RESET, 1),
                    (MessageType.STREAM_RESET, 2),
                ]
            expected_service = "" if source_version is V1 else "SSH"
            sent = [m for mode, m in server.received if mode == "source"]
            assert {m.service_id for m in sent} == {expected_service}


async def test_v2_carries_one_connection_per_service_at_a_time(
    server: FakeTunnelServer, echo_app: asyncio.Server
) -> None:
    source, destination = proxies(server, {"SSH": app_address(echo_app), "HTTP": "9"}, V2, V2)
    async with destination, source:
        first_reader, first_writer = await asyncio.open_connection("127.0.0.1", source.ports["SSH"])
        first_writer.write(b"one")
        assert await first_reader.readexactly(3) == b"one"
        waiting = asyncio.create_task(echo_exchange(source.ports["SSH"], b"two"))
        done, _ = await asyncio.wait({waiting}, timeout=0.1)
        assert not done  # queued behind the first connection, as with localproxy
        first_writer.close()
        await first_writer.wait_closed()
        assert await waiting == b"two"


async def test_http_response_then_close(server: FakeTunnelServer, http_app: asyncio.Server) -> None:
    source, destination = proxies(server, {"HTTP": app_address(http_app), "SSH": "9"})
    async with destination, source:
        response = await http_get(source.ports["HTTP"], "/status")
        assert response.startswith(b"HTTP/1.0 200 OK\r\n")
        assert source.client is not None
        reset = await source.client.wait_for(MessageType.CONNECTION_RESET)
        assert (reset.service_id, reset.stream_id, reset.connection_id) == ("HTTP", 1, 1)


async def test_destination_connect_failures_reset(
    server: FakeTunnelServer, echo_app: asyncio.Server
) -> None:
    closed_app = await start_echo_app()
    address = app_address(closed_app)
    closed_app.close()
    await closed_app.wait_closed()
    source, destination = proxies(server, {"SSH": address, "HTTP": app_address(echo_app)})
    async with destination, source:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.ports["SSH"])
        # V3 guide: a failed new stream is answered with StreamReset.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        assert source.client is not None and destination.client is not None
        reset = await source.client.wait_for(MessageType.STREAM_RESET)
        assert (reset.service_id, reset.stream_id) == ("SSH", 1)

        # A failed ConnectionStart is answered with ConnectionReset.
        reader, writer = await asyncio.open_connection("127.0.0.1", source.ports["HTTP"])
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        echo_app.close()
        second = await asyncio.open_connection("127.0.0.1", source.ports["HTTP"])
        assert await asyncio.wait_for(second[0].read(), 5) == b""
        reset = await source.client.wait_for(MessageType.CONNECTION_RESET, service_id="HTTP")
        assert (reset.stream_id, reset.connection_id) == (1, 2)
        writer.write(b"y")  # the first connection is unaffected
        assert await reader.readexactly(1) == b"y"
        for w in (writer, second[1]):
            w.close()
            await w.wait_closed()


async def test_mapping_must_match_service_ids(server: FakeTunnelServer) -> None:
    with pytest.raises(LocalProxyError, match="Wrong configurations detected"):
        await LocalProxy(server.endpoint, "source-token", "source", {"FTP": 0}).start()
    with pytest.raises(LocalProxyError, match="No port mapping exists for service id 'HTTP'"):
        await LocalProxy(server.endpoint, "destination-token", "destination", "SSH=22").start()
    assert server.connections == {} or await server.wait_until(
        lambda: True if not server.connections else None
    )


async def test_tunnel_close_ends_the_proxy(
    server: FakeTunnelServer, echo_app: asyncio.Server
) -> None:
    source, destination = proxies(server, {"SSH": app_address(echo_app), "HTTP": "9"})
    async with destination, source:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.ports["SSH"])
        writer.write(b"hi")
        assert await reader.readexactly(2) == b"hi"
        await server.close_client("source", 1000, "Tunnel closed")
        await source.wait_closed()
        assert source.closed and source.error is None
        # localproxy: every local connection is reset when the WebSocket closes.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", source.ports["SSH"])


async def test_destination_new_stream_replaces_the_old_one(
    server: FakeTunnelServer, echo_app: asyncio.Server
) -> None:
    targets = {"SSH": app_address(echo_app), "HTTP": "9"}
    async with LocalProxy(server.endpoint, "destination-token", "destination", targets):
        await server.send("destination", TunnelMessage.stream_start(1, "SSH", 1))
        await server.send("destination", TunnelMessage.data(1, b"a", "SSH", 1))
        await server.wait_received(1, "destination")
        await server.send("destination", TunnelMessage.stream_start(2, "SSH", 1))
        await server.send(
            "destination",
            TunnelMessage.data(1, b"stale", "SSH", 1),
            TunnelMessage.data(2, b"b", "SSH", 1),
        )
        echoed = await server.wait_received(2, "destination")
        # V3 guide: the new StreamStart ended stream 1 (no reset sent); its data is stale.
        assert echoed == [
            TunnelMessage.data(1, b"a", "SSH", 1),
            TunnelMessage.data(2, b"b", "SSH", 1),
        ]
        await server.send("destination", TunnelMessage.session_reset())
        await server.send("destination", TunnelMessage.data(2, b"gone", "SSH", 1))
        await server.send("destination", TunnelMessage.stream_start(3, "SSH", 1))
        await server.send("destination", TunnelMessage.connection_start(3, 2, "SSH"))
        await server.send("destination", TunnelMessage.data(3, b"c2", "SSH", 2))
        echoed = await server.wait_received(3, "destination")
        # SESSION_RESET ended every stream, so b"gone" went nowhere.
        assert echoed[-1] == TunnelMessage.data(3, b"c2", "SSH", 2)


@pytest.mark.parametrize("ignorable", [True, False])
async def test_unknown_message_types(
    server: FakeTunnelServer, echo_app: asyncio.Server, ignorable: bool
) -> None:
    destination = LocalProxy(
        server.endpoint,
        "destination-token",
        "destination",
        {"SSH": app_address(echo_app), "HTTP": "9"},
    )
    async with destination:
        await server.send("destination", TunnelMessage(42, ignorable=ignorable))
        if ignorable:
            await server.send("destination", TunnelMessage.stream_start(1, "SSH", 1))
            await server.send("destination", TunnelMessage.data(1, b"still here", "SSH", 1))
            echoed = await server.wait_received(1, "destination")
            assert echoed == [TunnelMessage.data(1, b"still here", "SSH", 1)]
        else:
            await destination.wait_closed()
            assert isinstance(destination.error, LocalProxyError)
            assert "type 42" in str(destination.error)


async def test_no_leaks() -> None:
    fds = open_fds()
    tasks = asyncio.all_tasks()
    app = await start_echo_app()
    async with FakeTunnelServer(["SSH"]) as server:
        source, destination = proxies(server, {"SSH": app_address(app)})
        async with destination, source:
            connections = [
                await asyncio.open_connection("127.0.0.1", source.port) for _ in range(3)
            ]
            for n, (reader, writer) in enumerate(connections):
                writer.write(b"%d" % n)
                assert await reader.readexactly(1) == b"%d" % n
            assert destination.open_connections == 3
        # Stopped while the local connections were open: they are closed.
        for reader, writer in connections:
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            await writer.wait_closed()
    app.close()
    await app.wait_closed()
    assert asyncio.all_tasks() == tasks
    assert open_fds() - fds == set()  # only what this test opened counts
