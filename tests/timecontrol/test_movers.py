"""Each expiry behaviour under each way of moving time: the fake's clock, freezegun (with
and without tick), pytest-freezer and time-machine; in sync and async tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from movers import Mover, open_tunnel

from pytest_securetunnel import (
    HandshakeRefused,
    SecureTunnelFake,
    SyncTunnelClient,
    TunnelClient,
    TunnelProxy,
)
from pytest_securetunnel._realtime import real_monotonic

START = dt.datetime(2031, 6, 1, 8, 0, tzinfo=dt.timezone.utc)
EXPIRED = (1000, "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed")


@pytest.fixture(params=["clock", "freezegun", "freezegun-tick", "pytest-freezer", "time-machine"])
def mover(request: pytest.FixtureRequest, securetunnel: SecureTunnelFake) -> Iterator[Mover]:
    # pytest-freezer's fixture freezes time as soon as it is requested: only its variant asks.
    freezer = request.getfixturevalue("freezer") if request.param == "pytest-freezer" else None
    mover = Mover(request.param, securetunnel, freezer, START)
    mover.start()
    yield mover
    mover.stop()


def test_describe_and_list_show_closed_with_lifetime_end(
    mover: Mover, securetunnel_client: Any
) -> None:
    opened = open_tunnel(securetunnel_client)
    created = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"][
        "createdAt"
    ]
    mover.move(dt.timedelta(minutes=9, seconds=59))
    assert securetunnel_client.list_tunnels()["tunnelSummaries"][0]["status"] == "OPEN"
    mover.move(dt.timedelta(minutes=10, seconds=1))
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert tunnel["lastUpdatedAt"] == created + dt.timedelta(minutes=10)
    summary = securetunnel_client.list_tunnels()["tunnelSummaries"][0]
    assert (summary["status"], summary["lastUpdatedAt"]) == ("CLOSED", tunnel["lastUpdatedAt"])


def test_rotation_fails_as_on_a_closed_tunnel_and_never_extends(
    mover: Mover, securetunnel_client: Any
) -> None:
    opened = open_tunnel(securetunnel_client)
    mover.move(dt.timedelta(minutes=9))
    securetunnel_client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="ALL")
    mover.move(dt.timedelta(minutes=10))
    with pytest.raises(securetunnel_client.exceptions.ClientError) as info:
        securetunnel_client.rotate_tunnel_access_token(
            tunnelId=opened["tunnelId"], clientMode="SOURCE"
        )
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"


def test_live_connections_close_promptly_and_new_handshakes_are_refused(
    mover: Mover, securetunnel_client: Any, securetunnel_proxy: TunnelProxy
) -> None:
    opened = open_tunnel(securetunnel_client)
    source = SyncTunnelClient.connect(
        securetunnel_proxy.endpoint, opened["sourceAccessToken"], "source"
    )
    try:
        stream = source.start_stream("SSH")
        source.send(b"still works", stream_id=stream, service_id="SSH")  # relay while frozen
        securetunnel_proxy.wait_for("received", timeout=5, tunnel=opened["tunnelId"])
        mover.move(dt.timedelta(minutes=10))
        started = real_monotonic()
        source.wait_closed(timeout=2)
        assert real_monotonic() - started < 1.0
        assert (source.close_code, source.close_reason) == EXPIRED
    finally:
        source.close()
    with pytest.raises(HandshakeRefused) as refused:
        SyncTunnelClient.connect(
            securetunnel_proxy.endpoint, opened["destinationAccessToken"], "destination"
        )
    assert refused.value.headers.get("X-Status-Reason") == "Tunnel is closed"


def test_closed_tunnels_disappear_after_retention(mover: Mover, securetunnel_client: Any) -> None:
    opened = open_tunnel(securetunnel_client)
    securetunnel_client.close_tunnel(tunnelId=opened["tunnelId"])
    mover.move(dt.timedelta(hours=2, minutes=59))
    assert securetunnel_client.list_tunnels()["tunnelSummaries"][0]["status"] == "CLOSED"
    mover.move(dt.timedelta(hours=3))
    assert securetunnel_client.list_tunnels()["tunnelSummaries"] == []
    with pytest.raises(securetunnel_client.exceptions.ResourceNotFoundException):
        securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])


async def test_async_expiry_and_ping_under_moved_time(
    mover: Mover, securetunnel: SecureTunnelFake, securetunnel_proxy: TunnelProxy
) -> None:
    opened = securetunnel.call(
        "OpenTunnel",
        {
            "destinationConfig": {"services": ["SSH"]},
            "timeoutConfig": {"maxLifetimeTimeoutMinutes": 10},
        },
    )
    async with await TunnelClient.connect(
        securetunnel_proxy.endpoint, opened["sourceAccessToken"], "source"
    ) as source:
        await source.ping(b"1796041032374")  # the proxy answers while time is frozen
        mover.move(dt.timedelta(minutes=10))
        await source.wait_closed()  # woken by the close frame
        assert (source.close_code, source.close_reason) == EXPIRED
