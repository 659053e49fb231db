"""CloseTunnel, deletion, expiry and retention (AWS docs; docs/fidelity.md where AWS is silent)."""

from __future__ import annotations

import pytest

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract


def test_close_makes_the_tunnel_closed_with_both_sides_disconnected(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    answer = ctx.client.close_tunnel(tunnelId=tunnel_id)
    assert {k: v for k, v in answer.items() if k != "ResponseMetadata"} == {}
    tunnel = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["lastUpdatedAt"] >= tunnel["createdAt"]


def test_closing_a_closed_tunnel_succeeds_and_changes_nothing(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=tunnel_id)
    before = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    ctx.client.close_tunnel(tunnelId=tunnel_id)
    after = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert after["status"] == "CLOSED"
    assert after["lastUpdatedAt"] == before["lastUpdatedAt"]


def test_close_with_delete_removes_the_tunnel(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=tunnel_id, delete=True)
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.describe_tunnel(tunnelId=tunnel_id)
    assert ctx.list_ours() == []


def test_close_with_delete_removes_an_already_closed_tunnel(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=tunnel_id)
    ctx.client.close_tunnel(tunnelId=tunnel_id, delete=True)
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.describe_tunnel(tunnelId=tunnel_id)


def test_a_closed_tunnel_is_still_listed_as_closed(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=tunnel_id)
    assert [(s["tunnelId"], s["status"]) for s in ctx.list_ours()] == [(tunnel_id, "CLOSED")]


@pytest.mark.securetunnel_contract(tunnels=0)
def test_close_of_an_unknown_tunnel_is_resource_not_found(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.close_tunnel(tunnelId="00000000-0000-4000-8000-000000000000")


@pytest.mark.securetunnel_contract(clock=True)
def test_a_tunnel_closes_when_its_lifetime_ends(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 1})["tunnelId"]
    ctx.advance_clock(seconds=50)
    assert ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"] == "OPEN"
    ctx.advance_clock(seconds=11)
    tunnel = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert (tunnel["lastUpdatedAt"] - tunnel["createdAt"]).total_seconds() == pytest.approx(60)


@pytest.mark.securetunnel_contract(clock=True)
def test_a_closed_tunnel_is_gone_three_hours_later(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=tunnel_id)
    ctx.advance_clock(hours=2, minutes=59)
    assert ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"] == "CLOSED"
    ctx.advance_clock(minutes=1, seconds=1)
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.describe_tunnel(tunnelId=tunnel_id)
    assert ctx.list_ours() == []
