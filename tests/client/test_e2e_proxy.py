"""End to end: clients and local proxies through the real TunnelProxy over the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from helpers_client import app_address, echo_exchange, start_echo_app, thread_names

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.client import (
    EchoPeer,
    HandshakeError,
    HandshakeRefused,
    LocalProxy,
    SyncEchoPeer,
    SyncTunnelClient,
    TunnelClient,
)
from pytest_securetunnel.protocol import MessageType, ProtocolVersion

try:
    from pytest_securetunnel.proxy import TunnelProxy
except (ImportError, AttributeError):  # the proxy is not there yet
    pytest.skip("pytest_securetunnel.proxy.TunnelProxy is not available", allow_module_level=True)


@pytest.fixture
def fake() -> SecureTunnelFake:
    return SecureTunnelFake()


@pytest.fixture
def proxy(fake: SecureTunnelFake) -> Iterator[TunnelProxy]:
    with TunnelProxy(fake, tls=False) as running:
        yield running


def open_tunnel(fake: SecureTunnelFake, services: list[str] | None = None) -> dict[str, Any]:
    return fake.call("OpenTunnel", {"destinationConfig": {"services": services or ["SSH"]}})


async def test_clients_through_the_proxy(fake: SecureTunnelFake, proxy: TunnelProxy) -> None:
    tunnel = open_tunnel(fake)
    async with (
        await TunnelClient.connect(
            proxy.endpoint, tunnel["destinationAccessToken"], "destination"
        ) as destination,
        await TunnelClient.connect(proxy.endpoint, tunnel["sourceAccessToken"], "source") as source,
    ):
        assert source.service_ids == destination.service_ids == ("SSH",)
        assert source.channel_id and destination.channel_id
        await source.start_stream("SSH")
        await source.send(b"x" * 100_000, service_id="SSH")
        start = await destination.receive()
        assert start.type == MessageType.STREAM_START
        received = await destination.receive_data("SSH") + await destination.receive_data("SSH")
        assert received == b"x" * 100_000
        await destination.send(b"back", service_id="SSH")
        assert await source.receive_data("SSH") == b"back"


async def test_used_token_is_refused(fake: SecureTunnelFake, proxy: TunnelProxy) -> None:
    tunnel = open_tunnel(fake)
    token = tunnel["destinationAccessToken"]
    async with await TunnelClient.connect(proxy.endpoint, token, "destination"):
        pass
    with pytest.raises(HandshakeRefused) as info:
        await TunnelClient.connect(proxy.endpoint, token, "destination")
    assert info.value.status == 400
    assert "previously used" in info.value.body


async def test_close_tunnel_closes_clients(fake: SecureTunnelFake, proxy: TunnelProxy) -> None:
    tunnel = open_tunnel(fake)
    source = await TunnelClient.connect(proxy.endpoint, tunnel["sourceAccessToken"], "source")
    fake.call("CloseTunnel", {"tunnelId": tunnel["tunnelId"]})
    await source.wait_closed()
    assert source.close_code == 1000
    with pytest.raises(HandshakeRefused) as info:
        await TunnelClient.connect(proxy.endpoint, tunnel["destinationAccessToken"], "destination")
    assert info.value.status_reason == "Tunnel is closed"


async def test_tls_endpoint(fake: SecureTunnelFake) -> None:
    tunnel = open_tunnel(fake)
    with TunnelProxy(fake) as tls_proxy:
        async with (
            await EchoPeer.connect(
                tls_proxy.tls_endpoint,
                tunnel["destinationAccessToken"],
                ssl=tls_proxy.ssl_context,
            ),
            await TunnelClient.connect(
                tls_proxy.tls_endpoint,
                tunnel["sourceAccessToken"],
                "source",
                ssl=tls_proxy.ssl_context,
                version=ProtocolVersion.V2,
            ) as source,
        ):
            await source.start_stream("SSH")
            await source.send(b"over tls", service_id="SSH")
            assert await source.receive_data("SSH") == b"over tls"


@pytest.mark.parametrize("source_version", [ProtocolVersion.V2, ProtocolVersion.V3])
async def test_local_proxies_through_the_proxy(
    fake: SecureTunnelFake, proxy: TunnelProxy, source_version: ProtocolVersion
) -> None:
    tunnel = open_tunnel(fake, ["SSH", "WEB"])
    async with await start_echo_app() as app:
        targets = {"SSH": app_address(app), "WEB": app_address(app)}
        async with (
            LocalProxy(proxy.endpoint, tunnel["destinationAccessToken"], "destination", targets),
            LocalProxy(
                proxy.endpoint, tunnel["sourceAccessToken"], "source", version=source_version
            ) as source,
        ):
            payloads = [bytes([n]) * 200_000 for n in range(3)]
            ports = [source.ports["SSH"], source.ports["SSH"], source.ports["WEB"]]
            replies = await asyncio.gather(
                *(
                    echo_exchange(port, payload)
                    for port, payload in zip(ports, payloads, strict=True)
                )
            )
            assert replies == payloads
            fake.call("CloseTunnel", {"tunnelId": tunnel["tunnelId"]})
            await source.wait_closed()


def test_sync_clients_through_the_proxy(fake: SecureTunnelFake, proxy: TunnelProxy) -> None:
    before = thread_names()
    tunnel = open_tunnel(fake)
    with (
        SyncEchoPeer.connect(proxy.endpoint, tunnel["destinationAccessToken"]) as peer,
        SyncTunnelClient.connect(proxy.endpoint, tunnel["sourceAccessToken"], "source") as source,
    ):
        source.start_stream("SSH")
        source.send(b"sync", service_id="SSH")
        assert source.receive_data("SSH") == b"sync"
        assert peer.echoed_bytes == 4
    assert thread_names() == before


async def test_ssl_with_a_plain_endpoint_names_the_pairing(fake: SecureTunnelFake) -> None:
    tunnel = open_tunnel(fake)
    with TunnelProxy(fake) as proxy:
        with pytest.raises(ValueError, match=r"plain ws:// but ssl= was given.*tls_endpoint"):
            await TunnelClient.connect(
                proxy.endpoint, tunnel["sourceAccessToken"], "source", ssl=proxy.ssl_context
            )
        assert fake.tunnel(tunnel["tunnelId"]).source_token == tunnel["sourceAccessToken"]


async def test_tls_endpoint_without_ssl_names_the_pairing(fake: SecureTunnelFake) -> None:
    tunnel = open_tunnel(fake)
    with (
        TunnelProxy(fake) as proxy,
        pytest.raises(HandshakeError, match=r"not trusted.*ssl=proxy.ssl_context"),
    ):
        await TunnelClient.connect(proxy.tls_endpoint, tunnel["sourceAccessToken"], "source")
