"""SyncTunnelClient, EchoPeer and SyncEchoPeer."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fake_tunnel_server import FakeTunnelServer
from helpers_client import ThreadedServer, thread_names

from pytest_securetunnel.client import (
    EchoPeer,
    HandshakeRefused,
    SyncEchoPeer,
    SyncTunnelClient,
    TunnelClient,
)
from pytest_securetunnel.protocol import (
    MAX_PAYLOAD_SIZE,
    MessageType,
    ProtocolVersion,
    TunnelMessage,
)


async def test_echo_peer(server: FakeTunnelServer) -> None:
    async with (
        await EchoPeer.connect(server.endpoint, "destination-token") as peer,
        await TunnelClient.connect(server.endpoint, "source-token", "source") as source,
    ):
        await source.start_stream("HTTP")
        await source.start_connection(service_id="HTTP")
        await source.send(b"first", service_id="HTTP")
        await source.send(b"second", service_id="HTTP", connection_id=2)
        assert await source.receive_data("HTTP", connection_id=2) == b"second"
        assert await source.receive_data("HTTP", connection_id=1) == b"first"
        big = b"z" * (MAX_PAYLOAD_SIZE + 10)
        await source.send(big, service_id="HTTP")
        echoed = await source.receive_data() + await source.receive_data()
        assert echoed == big
        assert peer.echoed_messages == 4
        assert peer.echoed_bytes == 11 + len(big)
        # Stale DATA (no STREAM_START for SSH) is not echoed.
        await source.send_message(TunnelMessage.data(1, b"stale", "SSH", 1))
        await source.send(b"after", service_id="HTTP")
        assert await source.receive_data() == b"after"
        assert peer.echoed_messages == 5


def test_sync_client_round_trip(threaded_server: ThreadedServer) -> None:
    before = thread_names()
    with (
        SyncEchoPeer.connect(threaded_server.endpoint, "destination-token") as peer,
        SyncTunnelClient.connect(threaded_server.endpoint, "source-token", "source") as source,
    ):
        assert source.service_ids == ("SSH",)
        assert source.subprotocol == ProtocolVersion.V3.subprotocol
        assert source.start_stream("SSH") == 1
        source.send(b"hello", service_id="SSH")
        assert source.receive_data("SSH") == b"hello"
        assert source.wait_for(MessageType.DATA).payload == b"hello"
        assert peer.echoed_messages == 1
        assert [r.direction for r in source.messages] == ["received", "sent", "sent", "received"]
    assert source.closed
    assert source.close_code == 1000
    assert thread_names() == before


def test_sync_client_inside_a_running_loop(threaded_server: ThreadedServer) -> None:
    async def notebook_cell() -> bytes:
        # A loop runs in this thread, as in Jupyter; the facade must not need it.
        asyncio.get_running_loop()
        endpoint = threaded_server.endpoint
        with (
            SyncTunnelClient.connect(endpoint, "destination-token", "destination") as destination,
            TunnelClient.sync(endpoint, "source-token", "source") as source,
        ):
            source.start_stream("SSH")
            destination.wait_for(MessageType.STREAM_START)
            destination.send(b"from destination", service_id="SSH")
            return source.receive_data()

    assert asyncio.run(notebook_cell()) == b"from destination"


def test_sync_client_refusal_leaves_no_thread(threaded_server: ThreadedServer) -> None:
    before = thread_names()
    with pytest.raises(HandshakeRefused):
        SyncTunnelClient.connect(threaded_server.endpoint, "bad", "source")
    assert thread_names() == before


def test_sync_iteration_and_close(threaded_server: ThreadedServer) -> None:
    client = SyncTunnelClient.connect(threaded_server.endpoint, "destination-token", "destination")
    threaded_server.thread.run(
        threaded_server.server.send("destination", TunnelMessage.stream_start(1, "SSH", 1))
    )
    threaded_server.thread.run(threaded_server.server.close_client("destination", 1000, "bye"))
    assert [m.type for m in client] == [MessageType.STREAM_START]
    assert client.close_reason == "bye"
    client.close()
    client.close()
    assert not any(t.name.startswith("SyncTunnelClient") for t in threading.enumerate())


def test_sync_ping_is_answered_by_the_proxy() -> None:
    from pytest_securetunnel import SecureTunnelFake, SyncTunnelClient, TunnelProxy

    fake = SecureTunnelFake(seed=3)
    opened = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
    with TunnelProxy(fake, tls=False) as proxy:
        client = SyncTunnelClient.connect(proxy.endpoint, opened["sourceAccessToken"], "source")
        try:
            assert client.ping(b"1796041032374", timeout=5) >= 0.0
        finally:
            client.close()
