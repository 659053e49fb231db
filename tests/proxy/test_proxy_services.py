"""One service list per tunnel: rotation with a new ``destinationConfig`` and live connections.

Every live V2/V3 connection was announced the tunnel's current services in SERVICE_IDS,
and its messages are checked against that list. A rotation that changes the services
closes the connections announced the old list (1008), so the client reconnects and is
told the new one.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from pytest_securetunnel.protocol import FrameDecoder, TunnelMessage, encode_frame
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.proxy._relay import TunnelRelay
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import (
    CLIENT_TOKEN,
    V1,
    V3,
    connect_client,
    connect_pair,
    data,
    describe,
    open_tunnel,
    recv_messages,
    start_stream,
)
from .test_proxy_relay import closed_with

REVOKED = (1008, "Access token revoked by RotateTunnelAccessToken")
CHANGED = (
    1008,
    "Tunnel services changed by RotateTunnelAccessToken: reconnect to receive the new SERVICE_IDS",
)


def _rotate_destination(fake: SecureTunnelFake, tunnel_id: str, services: list[str]) -> str:
    rotated = fake.call(
        "RotateTunnelAccessToken",
        {
            "tunnelId": tunnel_id,
            "clientMode": "DESTINATION",
            "destinationConfig": {"services": services},
        },
    )
    return str(rotated["destinationAccessToken"])


async def _service_ids(ws: object) -> list[TunnelMessage]:
    data = await asyncio.wait_for(ws.recv(), 5)  # type: ignore[attr-defined]
    assert isinstance(data, bytes)
    return FrameDecoder().feed(data)


async def test_new_services_close_the_source_that_stayed_connected(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=("SSH",))
    tunnel_id = opened["tunnelId"]
    src = await connect_client(
        proxy, opened["sourceAccessToken"], "source", headers={"client-token": CLIENT_TOKEN}
    )
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination")
    assert await _service_ids(src) == [TunnelMessage.service_ids(["SSH"])]
    await dst.recv()
    await start_stream(src, dst)

    new_token = _rotate_destination(fake, tunnel_id, ["VNC"])

    assert await closed_with(dst) == REVOKED
    assert await closed_with(src) == CHANGED
    await proxy.wait_for_async("disconnected", mode="source")
    await proxy.wait_for_async("disconnected", mode="destination")
    tunnel = describe(fake, tunnel_id)
    assert tunnel["destinationConfig"]["services"] == ["VNC"]
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationConnectionState"]["status"] == "DISCONNECTED"

    # Both sides reconnect and are told the tunnel's one list: VNC.
    dst = await connect_client(proxy, new_token, "destination")
    src = await connect_client(
        proxy, opened["sourceAccessToken"], "source", headers={"client-token": CLIENT_TOKEN}
    )
    assert await _service_ids(dst) == [TunnelMessage.service_ids(["VNC"])]
    assert await _service_ids(src) == [TunnelMessage.service_ids(["VNC"])]
    # The new service id works end to end ...
    await start_stream(src, dst, stream_id=2, service="VNC")
    await src.send(data(b"vnc bytes", stream_id=2, service="VNC"))
    assert await recv_messages(dst) == [TunnelMessage.data(2, b"vnc bytes", "VNC", 1)]
    await dst.send(data(b"vnc reply", stream_id=2, service="VNC"))
    assert await recv_messages(src) == [TunnelMessage.data(2, b"vnc reply", "VNC", 1)]
    # ... and the old one is a service id the tunnel does not have.
    await src.send(encode_frame(TunnelMessage.stream_start(3, "SSH", 1)))
    code, reason = await closed_with(src)
    assert (code, reason) == (
        1002,
        "service-id-unknown: STREAM_START has serviceId 'SSH', but the tunnel's services are VNC",
    )
    await dst.close()


async def test_the_destination_reconnected_with_the_new_token_sees_new_services_only(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=("SSH", "RDP"))
    src, dst = await connect_pair(proxy, opened)
    new_token = _rotate_destination(fake, opened["tunnelId"], ["RDP", "VNC"])
    assert await closed_with(dst) == REVOKED
    assert await closed_with(src) == CHANGED
    dst = await connect_client(proxy, new_token, "destination")
    assert await _service_ids(dst) == [TunnelMessage.service_ids(["RDP", "VNC"])]
    # Nothing is relayed to or from the closed source: the destination is alone.
    await dst.send(data(b"x", service="VNC"))
    assert await closed_with(dst) == (
        1002,
        "data-before-stream-start: DATA on stream 1 for service id 'VNC', which has had no "
        "STREAM_START on this connection",
    )


async def test_the_same_services_keep_the_source_connected(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=("SSH", "RDP"))
    src, dst = await connect_pair(proxy, opened)
    # The same set in another order is the same list of services.
    new_token = _rotate_destination(fake, opened["tunnelId"], ["RDP", "SSH"])
    assert await closed_with(dst) == REVOKED
    dst = await connect_client(proxy, new_token, "destination")
    assert await _service_ids(dst) == [TunnelMessage.service_ids(["RDP", "SSH"])]
    await start_stream(src, dst, service="RDP")
    await src.send(data(b"still here", service="RDP"))
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"still here", "RDP", 1)]
    assert [e for e in proxy.events if e.mode == "source" and e.kind == "closing"] == []
    await asyncio.gather(src.close(), dst.close())


async def test_a_v1_source_is_announced_nothing_and_stays_connected(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=("SSH",))
    src = await connect_client(proxy, opened["sourceAccessToken"], "source", subprotocol=V1)
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination")
    await dst.recv()
    new_token = _rotate_destination(fake, opened["tunnelId"], ["VNC"])
    assert await closed_with(dst) == REVOKED
    dst = await connect_client(proxy, new_token, "destination", subprotocol=V1)
    await src.send(encode_frame(TunnelMessage.stream_start(1)))
    assert await recv_messages(dst) == [TunnelMessage.stream_start(1)]
    await asyncio.gather(src.close(), dst.close())


async def test_rotating_all_with_new_services_closes_both_as_revoked(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=("SSH",))
    src, dst = await connect_pair(proxy, opened, subprotocol=V3)
    fake.call(
        "RotateTunnelAccessToken",
        {
            "tunnelId": opened["tunnelId"],
            "clientMode": "ALL",
            "destinationConfig": {"services": ["VNC"]},
        },
    )
    assert await closed_with(src) == REVOKED
    assert await closed_with(dst) == REVOKED
    closing = [e for e in proxy.events if e.kind == "closing"]
    assert sorted((e.mode, e.code) for e in closing) == [("destination", 1008), ("source", 1008)]


async def test_a_source_closed_for_new_services_is_disconnected_before_it_sees_the_close(
    proxy: TunnelProxy, fake: SecureTunnelFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proxy's loop is held once the connection has ended, before it notes the end:
    the client has seen its close, and DescribeTunnel must already say DISCONNECTED.
    """
    held, release = threading.Event(), threading.Event()
    detach = TunnelRelay.detach

    def held_detach(self: TunnelRelay, *args: object, **kwargs: object) -> None:
        held.set()
        release.wait(10)  # the test's deadline, not synchronisation: it sets release
        detach(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(TunnelRelay, "detach", held_detach)
    opened = open_tunnel(fake, services=("SSH",))
    tunnel_id = opened["tunnelId"]
    src = await connect_client(proxy, opened["sourceAccessToken"], "source")
    assert await _service_ids(src) == [TunnelMessage.service_ids(["SSH"])]
    try:
        _rotate_destination(fake, tunnel_id, ["VNC"])
        assert await closed_with(src) == CHANGED
        tunnel = describe(fake, tunnel_id)
        assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
        events = fake.tunnel(tunnel_id).data_plane
        assert [(e.kind, e.mode, e.code, e.reason) for e in events] == [
            ("connected", "source", None, None),
            ("disconnected", "source", *CHANGED),
        ]
    finally:
        release.set()
    await proxy.wait_for_async("disconnected", mode="source")
    assert held.is_set()
    assert len(fake.tunnel(tunnel_id).data_plane) == 2  # the end is not noted twice
