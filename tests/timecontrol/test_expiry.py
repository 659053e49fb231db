"""Tunnel lifetimes expire when a test moves the clock: with the fake's own clock,
freezegun, pytest-freezer and time-machine; in sync and async tests; without sleeps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import freezegun
import pytest
import time_machine

from pytest_securetunnel import (
    HandshakeRefused,
    SecureTunnelFake,
    SyncTunnelClient,
    TunnelClient,
    TunnelProxy,
    mock_securetunneling,
)
from pytest_securetunnel._realtime import real_monotonic

START = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
EXPIRED_REASON = "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed"


def open_tunnel(client: Any, minutes: int = 5) -> dict[str, Any]:
    return dict(
        client.open_tunnel(
            destinationConfig={"services": ["SSH"]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": minutes},
        )
    )


def connect_pair(proxy: TunnelProxy, opened: dict[str, Any]) -> tuple[Any, Any]:
    source = SyncTunnelClient.connect(proxy.endpoint, opened["sourceAccessToken"], "source")
    destination = SyncTunnelClient.connect(
        proxy.endpoint, opened["destinationAccessToken"], "destination"
    )
    return source, destination


def assert_relay_works(source: Any, destination: Any) -> None:
    stream = source.start_stream("SSH")
    source.send(b"ping", stream_id=stream, service_id="SSH")
    assert destination.receive_data("SSH", timeout=5) == b"ping"


def assert_closed_by_expiry(*clients: Any) -> None:
    """Each client was closed by the proxy promptly (well under a second of real time)."""
    started = real_monotonic()
    for client in clients:
        client.wait_closed(timeout=2)
        assert (client.close_code, client.close_reason) == (1000, EXPIRED_REASON)
    assert real_monotonic() - started < 1.0


def assert_refused_as_closed(proxy: TunnelProxy, token: str) -> None:
    with pytest.raises(HandshakeRefused) as info:
        SyncTunnelClient.connect(proxy.endpoint, token, "source", client_token="c" * 32)
    assert info.value.status == 400
    assert info.value.headers.get("X-Status-Reason") == "Tunnel is closed"


@pytest.fixture
def pair(
    securetunnel: SecureTunnelFake, securetunnel_client: Any, securetunnel_proxy: TunnelProxy
) -> Iterator[Callable[[], tuple[dict[str, Any], Any, Any]]]:
    clients: list[Any] = []

    def make() -> tuple[dict[str, Any], Any, Any]:
        opened = open_tunnel(securetunnel_client)
        source, destination = connect_pair(securetunnel_proxy, opened)
        clients.extend([source, destination])
        return opened, source, destination

    yield make
    for client in clients:
        client.close()


def test_clock_fixture_expires_a_tunnel_and_closes_its_connections(
    securetunnel_clock: Any, securetunnel_client: Any, securetunnel_proxy: TunnelProxy, pair: Any
) -> None:
    opened, source, destination = pair()
    created = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"][
        "createdAt"
    ]
    securetunnel_clock.advance(minutes=5)

    assert_closed_by_expiry(source, destination)
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert tunnel["lastUpdatedAt"] == created + dt.timedelta(minutes=5)
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    listed = securetunnel_client.list_tunnels()["tunnelSummaries"]
    assert [s["status"] for s in listed] == ["CLOSED"]
    with pytest.raises(securetunnel_client.exceptions.ClientError) as info:
        securetunnel_client.rotate_tunnel_access_token(
            tunnelId=opened["tunnelId"], clientMode="SOURCE"
        )
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    assert_refused_as_closed(securetunnel_proxy, opened["sourceAccessToken"])


def test_clock_fixture_now_and_set(securetunnel_clock: Any) -> None:
    securetunnel_clock.set(START)
    assert abs((securetunnel_clock.now() - START).total_seconds()) < 1
    securetunnel_clock.advance(seconds=90)
    assert abs((securetunnel_clock.now() - START).total_seconds() - 90) < 1


def test_rotation_never_extends_the_lifetime(
    securetunnel_clock: Any, securetunnel_client: Any
) -> None:
    opened = open_tunnel(securetunnel_client, minutes=10)
    securetunnel_clock.advance(minutes=9)
    securetunnel_client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="ALL")
    securetunnel_clock.advance(minutes=1)
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "CLOSED"


def test_freezegun_move_to_expires_and_proxy_keeps_working_while_frozen(
    securetunnel_client: Any, securetunnel_proxy: TunnelProxy, pair: Any
) -> None:
    with freezegun.freeze_time(START) as frozen:  # no tick, no real_asyncio
        opened, source, destination = pair()
        assert_relay_works(source, destination)  # relay and ping under frozen time
        frozen.move_to(START + dt.timedelta(minutes=4, seconds=59))
        assert_relay_works(source, destination)
        frozen.move_to(START + dt.timedelta(minutes=5))
        assert_closed_by_expiry(source, destination)
        tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
        assert tunnel["lastUpdatedAt"] == START + dt.timedelta(minutes=5)
        assert_refused_as_closed(securetunnel_proxy, opened["sourceAccessToken"])


def test_freezegun_tick_and_manual_tick(securetunnel_client: Any, pair: Any) -> None:
    with freezegun.freeze_time(START, tick=True) as frozen:
        _, source, destination = pair()
        assert_relay_works(source, destination)
        frozen.tick(dt.timedelta(minutes=6))
        assert_closed_by_expiry(source, destination)


def test_pytest_freezer_fixture(freezer: Any, securetunnel_client: Any, pair: Any) -> None:
    freezer.move_to(START)
    opened, source, destination = pair()
    freezer.move_to(START + dt.timedelta(minutes=5))
    assert_closed_by_expiry(source, destination)
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "CLOSED"


@pytest.mark.parametrize("tick", [False, True])
def test_time_machine_travel_and_shift(tick: bool, securetunnel_client: Any, pair: Any) -> None:
    with time_machine.travel(START, tick=tick) as traveller:
        _, source, destination = pair()
        assert_relay_works(source, destination)
        traveller.shift(dt.timedelta(minutes=5))
        assert_closed_by_expiry(source, destination)


def test_time_machine_move_to(securetunnel_client: Any, pair: Any) -> None:
    with time_machine.travel(START, tick=False) as traveller:
        _, source, destination = pair()
        traveller.move_to(START + dt.timedelta(hours=1))
        assert_closed_by_expiry(source, destination)


def test_closed_tunnels_disappear_after_retention(
    securetunnel_clock: Any, securetunnel_client: Any
) -> None:
    opened = open_tunnel(securetunnel_client)
    securetunnel_clock.advance(minutes=5 + 179)
    assert securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]["status"]
    securetunnel_clock.advance(minutes=1)
    with pytest.raises(securetunnel_client.exceptions.ResourceNotFoundException):
        securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])
    assert securetunnel_client.list_tunnels()["tunnelSummaries"] == []


def test_proxy_stops_cleanly_while_time_is_frozen() -> None:
    with freezegun.freeze_time(START), mock_securetunneling() as fake:
        proxy = TunnelProxy(fake).start()
        opened = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
        source, destination = connect_pair(proxy, opened)
        assert_relay_works(source, destination)
        started = real_monotonic()
        proxy.stop()
        assert real_monotonic() - started < 5
        source.wait_closed(timeout=2)
        source.close()
        destination.close()


@pytest.mark.parametrize("library", ["freezegun", "time-machine"])
async def test_async_test_sees_expiry_under_frozen_time(library: str) -> None:
    with mock_securetunneling() as fake, TunnelProxy(fake, tls=False) as proxy:
        if library == "freezegun":
            travel: Any = freezegun.freeze_time(START)
        else:
            travel = time_machine.travel(START, tick=False)
        with travel as controller:
            opened = fake.call(
                "OpenTunnel",
                {
                    "destinationConfig": {"services": ["SSH"]},
                    "timeoutConfig": {"maxLifetimeTimeoutMinutes": 1},
                },
            )
            async with await TunnelClient.connect(
                proxy.endpoint, opened["sourceAccessToken"], "source"
            ) as source:
                if library == "freezegun":
                    controller.move_to(START + dt.timedelta(minutes=1))
                else:
                    controller.shift(dt.timedelta(minutes=1))
                await source.wait_closed()  # woken by the close frame, not by a timer
                assert (source.close_code, source.close_reason) == (1000, EXPIRED_REASON)


def test_reset_drops_live_connections(
    securetunnel: SecureTunnelFake, securetunnel_client: Any, pair: Any
) -> None:
    _, source, destination = pair()
    securetunnel.reset()
    for client in (source, destination):
        client.wait_closed(timeout=2)
        assert (client.close_code, client.close_reason) == (1000, "Tunnel deleted")
    assert securetunnel_client.list_tunnels()["tunnelSummaries"] == []
