"""Tests of the fleet service against the stateful fake: no AWS account, no network."""

from __future__ import annotations

import pytest
from fleet import FleetService

from pytest_securetunnel import SecureTunnelFake


def test_start_session_opens_a_tunnel_and_notifies_the_device(
    securetunnel: SecureTunnelFake, securetunnel_client: object
) -> None:
    fleet = FleetService(securetunnel_client)
    session = fleet.start_session("robot-7")

    tunnel = securetunnel.tunnel(session.tunnel_id)
    assert tunnel.services == ["SSH"]
    assert tunnel.tags == {"owner": "fleet-service"}
    notification = securetunnel.notifications.wait("robot-7", timeout=1)
    assert notification.topic == "$aws/things/robot-7/tunnels/notify"
    assert notification.payload["services"] == ["SSH"]


def test_second_session_reuses_the_open_tunnel_with_a_fresh_token(
    securetunnel: SecureTunnelFake, securetunnel_client: object
) -> None:
    fleet = FleetService(securetunnel_client)
    first = fleet.start_session("robot-7")
    second = fleet.start_session("robot-7")

    assert second.tunnel_id == first.tunnel_id
    assert second.source_token != first.source_token
    assert securetunnel.token(first.source_token).revoked  # type: ignore[union-attr]


def test_end_sessions_pages_through_every_tunnel(
    securetunnel: SecureTunnelFake, securetunnel_client: object
) -> None:
    fleet = FleetService(securetunnel_client)
    for device in ("robot-1", "robot-2"):
        fleet.start_session(device)
    securetunnel_client.open_tunnel(  # type: ignore[attr-defined]
        destinationConfig={"thingName": "robot-1", "services": ["VNC"]}
    )

    assert fleet.end_sessions("robot-1") == 2
    assert [t.status for t in securetunnel.tunnels()] == ["CLOSED", "OPEN", "CLOSED"]


@pytest.mark.securetunnel(open_tunnels=1)
def test_quota_errors_reach_the_caller(securetunnel_client: object) -> None:
    fleet = FleetService(securetunnel_client)
    fleet.start_session("robot-1")
    with pytest.raises(securetunnel_client.exceptions.LimitExceededException):  # type: ignore[attr-defined]
        fleet.start_session("robot-2")
