"""TunnelClient: the opening handshake, refusals and SERVICE_IDS."""

from __future__ import annotations

import asyncio

import pytest
from fake_tunnel_server import CHANNEL_ID, FakeTunnelServer, Refusal

from pytest_securetunnel.client import (
    HandshakeError,
    HandshakeRefused,
    TunnelClient,
    TunnelClosedError,
)
from pytest_securetunnel.client._handshake import tunnel_url
from pytest_securetunnel.protocol import ClientMode, MessageType, ProtocolVersion

CLIENT_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("version", list(ProtocolVersion))
async def test_handshake_request_and_response(
    server: FakeTunnelServer, version: ProtocolVersion
) -> None:
    async with await TunnelClient.connect(
        server.endpoint, "source-token", "source", version=version, client_token=CLIENT_TOKEN
    ) as client:
        (handshake,) = server.handshakes
        assert handshake.path == "/tunnel?local-proxy-mode=source"
        assert handshake.headers.get_all("access-token") == ["source-token"]
        assert handshake.headers.get_all("client-token") == [CLIENT_TOKEN]
        assert handshake.headers.get_all("Sec-WebSocket-Protocol") == [version.subprotocol]
        assert "Sec-WebSocket-Extensions" not in handshake.headers  # compression off
        assert "Cookie" not in handshake.headers
        assert client.subprotocol == version.subprotocol
        assert client.version is version
        assert client.mode is ClientMode.SOURCE
        assert client.channel_id == CHANNEL_ID


async def test_token_in_cookie_and_extra_headers(server: FakeTunnelServer) -> None:
    async with await TunnelClient.connect(
        server.endpoint,
        "destination-token",
        ClientMode.DESTINATION,
        token_in="cookie",
        extra_headers={"X-Test": "1"},
    ):
        (handshake,) = server.handshakes
        assert handshake.path == "/tunnel?local-proxy-mode=destination"
        assert handshake.headers.get_all("Cookie") == ["awsiot-tunnel-token=destination-token"]
        assert "access-token" not in handshake.headers
        assert handshake.headers["X-Test"] == "1"


async def test_refusal_carries_status_body_and_headers(server: FakeTunnelServer) -> None:
    server.refusal = Refusal(
        400, "Tunnel is closed.", {"X-Status-Reason": "Tunnel is closed", "channel-id": "c1"}
    )
    with pytest.raises(HandshakeRefused) as info:
        await TunnelClient.connect(server.endpoint, "source-token", "source")
    refusal = info.value
    assert (refusal.status, refusal.reason, refusal.body) == (
        400,
        "Bad Request",
        "Tunnel is closed.",
    )
    assert refusal.status_reason == "Tunnel is closed"
    assert refusal.channel_id == "c1"
    assert refusal.headers["x-status-reason"] == "Tunnel is closed"
    assert str(refusal).startswith(
        'Proxy server rejected web socket upgrade request: (HTTP/1.1 400 Bad Request) "Tunnel'
    )


@pytest.mark.parametrize(
    ("token", "extra"),
    [
        ("wrong", None),
        (None, None),
        ("source-token", [("access-token", "source-token")]),  # two tokens
    ],
)
async def test_bad_tokens_are_refused(
    server: FakeTunnelServer, token: str | None, extra: list[tuple[str, str]] | None
) -> None:
    with pytest.raises(HandshakeRefused, match="Invalid access token") as info:
        await TunnelClient.connect(server.endpoint, token, "source", extra_headers=extra)
    assert info.value.status == 400


async def test_missing_subprotocol_in_response_is_an_error(server: FakeTunnelServer) -> None:
    server.answer_subprotocol = False
    with pytest.raises(HandshakeError, match="No websocket subprotocol returned"):
        await TunnelClient.connect(server.endpoint, "source-token", "source")


async def test_connection_refused_is_an_os_error(server: FakeTunnelServer) -> None:
    endpoint = server.endpoint
    await server.stop()
    with pytest.raises(OSError):
        await TunnelClient.connect(endpoint, "source-token", "source")


def test_tunnel_url_forms() -> None:
    assert tunnel_url("ws://h:1/", ClientMode.SOURCE, secure=False) == (
        "ws://h:1/tunnel?local-proxy-mode=source"
    )
    assert tunnel_url("h:443", ClientMode.DESTINATION, secure=True) == (
        "wss://h:443/tunnel?local-proxy-mode=destination"
    )


async def test_connect_waits_for_service_ids(server: FakeTunnelServer) -> None:
    server.service_ids_gate = asyncio.Event()
    connecting = asyncio.create_task(
        TunnelClient.connect(server.endpoint, "source-token", "source")
    )
    await server.wait_connected("source")
    await asyncio.wait({connecting}, timeout=0.05)
    assert not connecting.done()
    server.service_ids_gate.set()
    async with await connecting as client:
        assert client.service_ids == ("SSH", "HTTP")
        assert await client.wait_service_ids() == ("SSH", "HTTP")
        first = client.messages[0]
        assert (first.direction, first.message.type) == ("received", MessageType.SERVICE_IDS)


async def test_wait_service_ids_times_out(server: FakeTunnelServer) -> None:
    server.service_ids_gate = asyncio.Event()
    async with await TunnelClient.connect(
        server.endpoint, "source-token", "source", wait_service_ids=False
    ) as client:
        assert client.service_ids is None
        with pytest.raises(TimeoutError, match=r"no SERVICE_IDS message within 0\.05 s"):
            await client.wait_service_ids(timeout=0.05)
        server.service_ids_gate.set()


async def test_v1_gets_no_service_ids(server: FakeTunnelServer) -> None:
    async with await TunnelClient.connect(
        server.endpoint, "source-token", "source", version=ProtocolVersion.V1
    ) as client:
        assert await client.wait_service_ids() == ()
        assert client.service_ids is None
        assert client.messages == []


async def test_close_code_and_reason_from_the_server(server: FakeTunnelServer) -> None:
    first = await TunnelClient.connect(
        server.endpoint, "source-token", "source", client_token=CLIENT_TOKEN
    )
    async with await TunnelClient.connect(
        server.endpoint, "source-token", "source", client_token=CLIENT_TOKEN
    ):
        await first.wait_closed()
        assert first.closed
        assert first.close_code == 1008
        assert first.close_reason == "Connection is replaced by another connection"
        with pytest.raises(TunnelClosedError) as info:
            await first.receive()
        assert info.value.code == 1008


async def test_own_close(server: FakeTunnelServer) -> None:
    client = await TunnelClient.connect(server.endpoint, "source-token", "source")
    assert client.close_code is None
    await client.close()
    await client.close()  # idempotent
    assert client.closed
    assert client.close_code == 1000
    assert [message async for message in client] == []
