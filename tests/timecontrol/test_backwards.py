"""Time moved back never revives a tunnel: expiry, like CloseTunnel, is final.

Each way of moving time (the fake's clock, freezegun, a later ``freeze_time`` in the
past, pytest-freezer, time-machine) and each reader of the clock (the API, the proxy's
deadline timer, the admin API of server mode).
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import freezegun
import pytest
from movers import Mover, open_tunnel

from pytest_securetunnel import (
    HandshakeRefused,
    SecureTunnelFake,
    SyncTunnelClient,
    TunnelProxy,
    mock_securetunneling,
)
from pytest_securetunnel.server import SecureTunnelServer

START = dt.datetime(2032, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
EXPIRED = (1000, "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed")


@pytest.fixture(params=["clock", "freezegun", "freezegun-nested", "pytest-freezer", "time-machine"])
def mover(request: pytest.FixtureRequest, securetunnel: SecureTunnelFake) -> Iterator[Mover]:
    freezer = request.getfixturevalue("freezer") if request.param == "pytest-freezer" else None
    mover = Mover(request.param, securetunnel, freezer, START)
    mover.start()
    yield mover
    mover.stop()


def describe(client: Any, opened: dict[str, Any]) -> dict[str, Any]:
    return dict(client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"])


def assert_refused_as_closed(endpoint: str, token: str, mode: str) -> None:
    with pytest.raises(HandshakeRefused) as info:
        SyncTunnelClient.connect(endpoint, token, mode, client_token="c" * 32)
    assert info.value.status == 400
    assert info.value.headers.get("X-Status-Reason") == "Tunnel is closed"


def test_an_expired_tunnel_stays_closed_when_time_moves_back(
    mover: Mover, securetunnel_client: Any
) -> None:
    opened = open_tunnel(securetunnel_client)
    created = describe(securetunnel_client, opened)["createdAt"]
    mover.to(START + dt.timedelta(minutes=11))
    assert describe(securetunnel_client, opened)["status"] == "CLOSED"

    mover.to(START - dt.timedelta(hours=1))
    tunnel = describe(securetunnel_client, opened)
    assert tunnel["status"] == "CLOSED"
    # The end time stays the deadline, even though the clock now reads earlier.
    assert tunnel["lastUpdatedAt"] == created + dt.timedelta(minutes=10)
    (summary,) = securetunnel_client.list_tunnels()["tunnelSummaries"]
    assert (summary["status"], summary["lastUpdatedAt"]) == ("CLOSED", tunnel["lastUpdatedAt"])
    with pytest.raises(securetunnel_client.exceptions.ClientError) as info:
        securetunnel_client.rotate_tunnel_access_token(
            tunnelId=opened["tunnelId"], clientMode="SOURCE"
        )
    assert info.value.response["Error"]["Code"] == "InvalidRequestException"
    # A tunnel opened after the move lives its own lifetime from the new time.
    fresh = open_tunnel(securetunnel_client)
    assert describe(securetunnel_client, fresh)["status"] == "OPEN"


def test_a_closed_tunnel_stays_closed_when_time_moves_back_before_the_close(
    mover: Mover, securetunnel_client: Any
) -> None:
    opened = open_tunnel(securetunnel_client)
    mover.to(START + dt.timedelta(minutes=2))
    securetunnel_client.close_tunnel(tunnelId=opened["tunnelId"])
    mover.to(START + dt.timedelta(minutes=1))
    tunnel = describe(securetunnel_client, opened)
    assert tunnel["status"] == "CLOSED"
    closed_at = tunnel["lastUpdatedAt"] - (START + dt.timedelta(minutes=2))
    assert dt.timedelta(0) <= closed_at < dt.timedelta(seconds=1)  # the fake clock ticks


def test_old_tokens_stay_refused_after_the_proxy_saw_the_expiry(
    mover: Mover, securetunnel_client: Any, securetunnel_proxy: TunnelProxy
) -> None:
    opened = open_tunnel(securetunnel_client)
    source = SyncTunnelClient.connect(
        securetunnel_proxy.endpoint, opened["sourceAccessToken"], "source", client_token="c" * 32
    )
    try:
        mover.to(START + dt.timedelta(minutes=10))
        # Only the proxy's deadline timer reads the clock here (no API call).
        source.wait_closed(timeout=5)
        assert (source.close_code, source.close_reason) == EXPIRED
    finally:
        source.close()
    mover.to(START)
    assert_refused_as_closed(securetunnel_proxy.endpoint, opened["sourceAccessToken"], "source")
    assert_refused_as_closed(
        securetunnel_proxy.endpoint, opened["destinationAccessToken"], "destination"
    )
    assert describe(securetunnel_client, opened)["status"] == "CLOSED"


def test_retention_counts_from_the_end_on_the_clock(mover: Mover, securetunnel_client: Any) -> None:
    opened = open_tunnel(securetunnel_client)
    end = START + dt.timedelta(minutes=10)  # the fake's own clock ticks: within a second
    mover.to(end + dt.timedelta(seconds=1))
    assert describe(securetunnel_client, opened)["status"] == "CLOSED"
    mover.to(START)
    assert describe(securetunnel_client, opened)["status"] == "CLOSED"  # still kept
    mover.to(end + dt.timedelta(hours=2, minutes=59))
    assert describe(securetunnel_client, opened)["status"] == "CLOSED"
    mover.to(end + dt.timedelta(hours=3, seconds=1))
    with pytest.raises(securetunnel_client.exceptions.ResourceNotFoundException):
        describe(securetunnel_client, opened)


def test_an_expiry_seen_by_a_call_in_another_region_is_final() -> None:
    with freezegun.freeze_time(START) as frozen, mock_securetunneling() as fake:
        opened = fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 1}})
        frozen.move_to(START + dt.timedelta(minutes=2))
        fake.call("ListTunnels", {}, region="eu-west-1")
        frozen.move_to(START)
        tunnel = fake.call("DescribeTunnel", {"tunnelId": opened["tunnelId"]})["tunnel"]
        assert tunnel["status"] == "CLOSED"
        assert fake.status(fake.tunnel(opened["tunnelId"])) == "CLOSED"


def _post(url: str, path: str, body: dict[str, Any], target: str | None = None) -> Any:
    headers = {"Content-Type": "application/x-amz-json-1.1"}
    if target is not None:
        headers["X-Amz-Target"] = f"IoTSecuredTunneling.{target}"
    request = urllib.request.Request(
        url + path, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def test_server_admin_clock_moved_back_revives_nothing() -> None:
    with SecureTunnelServer(tls=False) as server:
        url = server.endpoint_url
        _post(url, "/_securetunnel/clock/set", {"time": START.timestamp()})
        opened = _post(
            url, "/", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 5}}, target="OpenTunnel"
        )
        _post(url, "/_securetunnel/clock/set", {"time": START.timestamp() + 600})
        _post(url, "/_securetunnel/clock/set", {"time": START.timestamp()})
        tunnel = _post(url, "/", {"tunnelId": opened["tunnelId"]}, target="DescribeTunnel")
        assert tunnel["tunnel"]["status"] == "CLOSED"
        assert tunnel["tunnel"]["lastUpdatedAt"] == tunnel["tunnel"]["createdAt"] + 300
        assert_refused_as_closed(server.data_endpoint, opened["sourceAccessToken"], "source")
