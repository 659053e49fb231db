"""ListTunnels: order, paging, filtering, summaries (AWS API reference)."""

from __future__ import annotations

import pytest

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract

SUMMARY_FIELDS = {"tunnelId", "tunnelArn", "status", "description", "createdAt", "lastUpdatedAt"}


@pytest.mark.securetunnel_contract(tunnels=3)
def test_tunnels_are_listed_newest_first(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    ids = [ctx.client.open_tunnel(description=f"n{i}")["tunnelId"] for i in range(3)]
    assert [s["tunnelId"] for s in ctx.list_ours()] == ids[::-1]


def test_summaries_carry_only_the_summary_fields(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    ctx.client.open_tunnel(
        description="summary",
        destinationConfig={"thingName": "contract-thing", "services": ["SSH"]},
    )
    (summary,) = ctx.list_ours()
    assert set(summary) <= SUMMARY_FIELDS
    assert {"tunnelId", "tunnelArn", "status", "createdAt", "lastUpdatedAt"} <= set(summary)
    assert summary["description"] == "summary"
    assert summary["status"] == "OPEN"


@pytest.mark.securetunnel_contract(tunnels=3)
def test_paging_one_by_one_lists_every_tunnel_once(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    ids = [ctx.client.open_tunnel()["tunnelId"] for _ in range(3)]
    seen = [s["tunnelId"] for s in ctx.list_ours(maxResults=1)]
    assert seen == ids[::-1]
    first = ctx.client.list_tunnels(maxResults=1)
    assert len(first["tunnelSummaries"]) == 1
    assert first["nextToken"]


@pytest.mark.securetunnel_contract(tunnels=2)
def test_thing_name_filters_by_destination_thing(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    thing = f"contract-{ctx.run_id[:8]}"
    wanted = ctx.client.open_tunnel(destinationConfig={"thingName": thing, "services": ["SSH"]})
    ctx.client.open_tunnel(destinationConfig={"thingName": f"{thing}-other", "services": ["SSH"]})
    listed = [s["tunnelId"] for s in ctx.list_ours(thingName=thing)]
    assert listed == [wanted["tunnelId"]]


@pytest.mark.securetunnel_contract(tunnels=0)
def test_more_than_100_results_is_a_validation_error(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("ValidationException"):
        ctx.client.list_tunnels(maxResults=101)


@pytest.mark.securetunnel_contract(tunnels=0)
def test_a_next_token_the_service_did_not_issue_is_an_invalid_request(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("InvalidRequestException"):
        ctx.client.list_tunnels(nextToken="bm90LWlzc3VlZC1ieS10aGUtc2VydmljZQ")


@pytest.mark.securetunnel_contract(tunnels=2)
def test_deleted_tunnels_are_not_listed(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    kept = ctx.client.open_tunnel()["tunnelId"]
    deleted = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=deleted, delete=True)
    assert [s["tunnelId"] for s in ctx.list_ours()] == [kept]
