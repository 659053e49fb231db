"""Reading a tunnel as DescribeTunnel does (``tunnel.status``), and the data-plane
events the fake records: connects, refusals with status and reason, closes with code."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_securetunnel.service import DataPlaneEvent, Refusal, SecureTunnelFake, Tunnel
from pytest_securetunnel.stateful import ModelTunnel


def open_tunnel(fake: SecureTunnelFake, minutes: int = 30) -> dict[str, str]:
    return fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": minutes}})


# -- status: an attribute, as its neighbours ------------------------------------------


def test_status_reads_as_an_attribute_by_the_fakes_clock() -> None:
    fake = SecureTunnelFake(seed=1)
    tunnel = fake.tunnel(open_tunnel(fake, minutes=30)["tunnelId"])
    assert tunnel.status == "OPEN"
    fake.clock.advance(minutes=29)
    assert tunnel.status == "OPEN"
    fake.clock.advance(minutes=1)
    assert tunnel.status == "CLOSED"  # by the fake's clock, not the wall clock


def test_status_at_reads_another_time() -> None:
    fake = SecureTunnelFake(seed=1)
    tunnel = fake.tunnel(open_tunnel(fake, minutes=30)["tunnelId"])
    assert tunnel.status_at(tunnel.created_at + 60) == "OPEN"
    assert tunnel.status_at(tunnel.created_at + 30 * 60) == "CLOSED"
    # Becoming CLOSED is final: a read at an earlier time finds it CLOSED too.
    assert tunnel.status_at(tunnel.created_at + 60) == "CLOSED"
    assert tunnel.status == "CLOSED"


def test_status_follows_close_tunnel() -> None:
    fake = SecureTunnelFake(seed=1)
    tunnel_id = open_tunnel(fake)["tunnelId"]
    fake.call("CloseTunnel", {"tunnelId": tunnel_id})
    assert fake.tunnel(tunnel_id).status == "CLOSED"
    assert fake.status(fake.tunnel(tunnel_id)) == "CLOSED"


def test_no_status_is_a_method_to_compare_by_mistake() -> None:
    # ``tunnel.status == "OPEN"`` compared a bound method with a string: always False.
    assert isinstance(Tunnel.__dict__["status"], property)
    assert not hasattr(ModelTunnel, "status")
    assert callable(ModelTunnel.status_at)


# -- data-plane events -------------------------------------------------------------


def test_connects_refusals_and_closes_are_recorded() -> None:
    fake = SecureTunnelFake(seed=2)
    opened = open_tunnel(fake)
    tunnel = fake.authorize_connection(opened["sourceAccessToken"], "source")
    fake.clock.advance(seconds=5)
    with pytest.raises(Refusal):
        fake.authorize_connection(opened["sourceAccessToken"], "source")  # single use
    fake.clock.advance(seconds=5)
    fake.connection_closed(tunnel, "source", 1000, "")
    start = tunnel.created_at
    reuse = "Invalid access token: The access token was previously used and can not be used again."
    events = fake.data_plane_events
    assert [dataclasses.replace(e, time=0.0) for e in events] == [
        DataPlaneEvent(0.0, "connected", "source", tunnel.tunnel_id),
        DataPlaneEvent(0.0, "refused", "source", tunnel.tunnel_id, 400, reuse),
        DataPlaneEvent(0.0, "disconnected", "source", tunnel.tunnel_id, 1000, ""),
    ]
    assert [e.time - start for e in events] == pytest.approx([0, 5, 10], abs=1)
    assert [e.kind for e in tunnel.data_plane] == ["connected", "refused", "disconnected"]
    assert [text for _, text in tunnel.events] == [
        "opened",
        "source connected",
        f"source refused: 400 {reuse}",
        "source disconnected (1000)",
    ]


def test_a_close_after_close_tunnel_keeps_its_code_and_reason() -> None:
    fake = SecureTunnelFake(seed=3)
    opened = open_tunnel(fake)
    tunnel = fake.authorize_connection(opened["destinationAccessToken"], "destination")
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    assert tunnel.destination.status == "DISCONNECTED"  # CloseTunnel set it already
    fake.connection_closed(tunnel, "destination", 1000, "Tunnel closed by CloseTunnel")
    assert [text for _, text in tunnel.events][-2:] == [
        "closed",
        "destination disconnected (1000 Tunnel closed by CloseTunnel)",
    ]
    last = fake.data_plane_events[-1]
    assert (last.kind, last.code, last.reason) == (
        "disconnected",
        1000,
        "Tunnel closed by CloseTunnel",
    )
    # A second report without a code (nothing new happened) records nothing.
    fake.connection_closed(tunnel, "destination")
    assert len(tunnel.data_plane) == 2


def test_a_refusal_of_a_closed_tunnel_names_the_tunnel() -> None:
    fake = SecureTunnelFake(seed=4)
    opened = open_tunnel(fake)
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    with pytest.raises(Refusal):
        fake.authorize_connection(opened["sourceAccessToken"], "source")
    event = fake.data_plane_events[-1]
    assert (event.kind, event.tunnel_id, event.code, event.reason) == (
        "refused",
        opened["tunnelId"],
        400,
        "Tunnel is closed",
    )
    assert event.text == "source refused: 400 Tunnel is closed"


def test_an_unknown_token_is_recorded_without_a_tunnel() -> None:
    fake = SecureTunnelFake(seed=5)
    with pytest.raises(Refusal):
        fake.authorize_connection("AQGAAXiAnot-a-token", "destination")
    [event] = fake.data_plane_events
    assert (event.kind, event.mode, event.tunnel_id, event.code) == (
        "refused",
        "destination",
        None,
        400,
    )
    assert event.reason == "Invalid access token: The access token is not valid."


def test_reset_forgets_the_events_and_late_closes_stay_out() -> None:
    fake = SecureTunnelFake(seed=6)
    opened = open_tunnel(fake)
    tunnel = fake.authorize_connection(opened["sourceAccessToken"], "source")
    fake.reset()
    assert fake.data_plane_events == []
    # The proxy closes the connection after the reset: not an event of the new state.
    fake.connection_closed(tunnel, "source", 1000, "Tunnel deleted")
    assert fake.data_plane_events == []
    assert tunnel.data_plane[-1].reason == "Tunnel deleted"
