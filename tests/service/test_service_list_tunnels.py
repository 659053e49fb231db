"""ListTunnels: order, thingName filter, paging through a stable snapshot, page size."""

from __future__ import annotations

import re
from typing import Any

from helpers_service import FROZEN_AT, assert_error, client_error, frozen, make_client

from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.service import SecureTunnelFake

NEXT_TOKEN_RE = re.compile(r"[a-zA-Z0-9_=-]{1,4096}")


def ids(response: dict[str, Any]) -> list[str]:
    return [s["tunnelId"] for s in response["tunnelSummaries"]]


def test_list_tunnels_is_newest_first() -> None:
    # AWS: ListTunnels order is creation time descending
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = []
        for _ in range(4):
            opened.append(client.open_tunnel()["tunnelId"])
            fake.clock.advance(seconds=1)
        listed = ids(client.list_tunnels())
    assert listed == opened[::-1]


def test_list_tunnels_is_newest_first_when_created_at_ties_under_frozen_time() -> None:
    # AWS: newest first; with frozen time createdAt ties and creation order decides
    with mock_securetunneling(seed=1), frozen():
        client = make_client()
        opened = [client.open_tunnel()["tunnelId"] for _ in range(5)]
        response = client.list_tunnels()
    assert ids(response) == opened[::-1]
    assert {s["createdAt"] for s in response["tunnelSummaries"]} == {FROZEN_AT}


def test_empty_account_lists_no_tunnels_and_no_next_token() -> None:
    # AWS: nextToken absent when there are no more results
    with mock_securetunneling(seed=1):
        response = make_client().list_tunnels()
    assert response["tunnelSummaries"] == []
    assert "nextToken" not in response


def test_summaries_carry_only_the_summary_fields() -> None:
    # AWS: summaries carry only tunnelId, tunnelArn, status, description, createdAt,
    # lastUpdatedAt (no tags, connection states or destinationConfig)
    with mock_securetunneling(seed=1), frozen():
        client = make_client()
        full = client.open_tunnel(
            description="with everything",
            tags=[{"key": "k", "value": "v"}],
            destinationConfig={"thingName": "thing-1", "services": ["SSH"]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": 5},
        )
        bare = client.open_tunnel()
        response = client.list_tunnels()
    assert response["tunnelSummaries"] == [
        {
            "tunnelId": bare["tunnelId"],
            "tunnelArn": bare["tunnelArn"],
            "status": "OPEN",
            "createdAt": FROZEN_AT,
            "lastUpdatedAt": FROZEN_AT,
        },
        {
            "tunnelId": full["tunnelId"],
            "tunnelArn": full["tunnelArn"],
            "status": "OPEN",
            "description": "with everything",
            "createdAt": FROZEN_AT,
            "lastUpdatedAt": FROZEN_AT,
        },
    ]


def test_closed_tunnels_are_listed_with_status_closed() -> None:
    # AWS: "CLOSED tunnels are listed until deleted"
    with mock_securetunneling(seed=1):
        client = make_client()
        closed = client.open_tunnel()["tunnelId"]
        still_open = client.open_tunnel()["tunnelId"]
        client.close_tunnel(tunnelId=closed)
        response = client.list_tunnels()
    assert [(s["tunnelId"], s["status"]) for s in response["tunnelSummaries"]] == [
        (still_open, "OPEN"),
        (closed, "CLOSED"),
    ]


def test_thing_name_filter_lists_only_that_things_tunnels_exactly() -> None:
    # AWS: thingName filter = tunnels whose destination thing is that name (exact match)
    with mock_securetunneling(seed=1):
        client = make_client()
        a1 = client.open_tunnel(destinationConfig={"thingName": "a", "services": ["SSH"]})
        client.open_tunnel(destinationConfig={"thingName": "b", "services": ["SSH"]})
        client.open_tunnel(destinationConfig={"thingName": "ab", "services": ["SSH"]})
        client.open_tunnel(destinationConfig={"services": ["SSH"]})
        client.open_tunnel()
        a2 = client.open_tunnel(destinationConfig={"thingName": "a", "services": ["VNC"]})
        for_a = ids(client.list_tunnels(thingName="a"))
        for_nobody = client.list_tunnels(thingName="nobody")
        everything = ids(client.list_tunnels())
    assert for_a == [a2["tunnelId"], a1["tunnelId"]]
    assert for_nobody["tunnelSummaries"] == []
    assert "nextToken" not in for_nobody
    assert len(everything) == 6


def test_thing_name_filter_follows_a_destination_config_replaced_by_rotation() -> None:
    # AWS: DESTINATION rotation with destinationConfig sets the tunnel's destination
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel(destinationConfig={"thingName": "old", "services": ["SSH"]})[
            "tunnelId"
        ]
        client.rotate_tunnel_access_token(
            tunnelId=tunnel_id,
            clientMode="DESTINATION",
            destinationConfig={"thingName": "new", "services": ["SSH"]},
        )
        assert ids(client.list_tunnels(thingName="old")) == []
        assert ids(client.list_tunnels(thingName="new")) == [tunnel_id]


def test_paging_with_max_results_returns_each_tunnel_once_newest_first() -> None:
    # AWS: maxResults 1-100; nextToken absent when no more results
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = [client.open_tunnel()["tunnelId"] for _ in range(5)]
        first = client.list_tunnels(maxResults=2)
        second = client.list_tunnels(maxResults=2, nextToken=first["nextToken"])
        third = client.list_tunnels(maxResults=2, nextToken=second["nextToken"])
    assert [ids(first), ids(second), ids(third)] == [
        opened[4:2:-1],
        opened[2:0:-1],
        opened[0:1],
    ]
    assert NEXT_TOKEN_RE.fullmatch(first["nextToken"])
    assert NEXT_TOKEN_RE.fullmatch(second["nextToken"])
    assert first["nextToken"] != second["nextToken"]
    assert "nextToken" not in third


def test_paging_reads_a_stable_snapshot_tunnels_opened_while_paging_do_not_appear() -> None:
    # our choice (docs/fidelity.md): a nextToken pages through the result as it was at page one
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = [client.open_tunnel()["tunnelId"] for _ in range(5)]
        seen: list[str] = []
        response = client.list_tunnels(maxResults=2)
        late: list[str] = []
        while True:
            seen.extend(ids(response))
            late.append(client.open_tunnel()["tunnelId"])
            if "nextToken" not in response:
                break
            response = client.list_tunnels(maxResults=2, nextToken=response["nextToken"])
        fresh = ids(client.list_tunnels())
    assert seen == opened[::-1]
    assert len(set(seen)) == len(seen)
    assert not set(late) & set(seen)
    assert fresh == late[::-1] + opened[::-1]


def test_page_size_may_change_between_pages_of_one_snapshot() -> None:
    # AWS: maxResults is a per-request parameter
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = [client.open_tunnel()["tunnelId"] for _ in range(6)]
        first = client.list_tunnels(maxResults=1)
        rest = client.list_tunnels(maxResults=10, nextToken=first["nextToken"])
    assert ids(first) + ids(rest) == opened[::-1]
    assert "nextToken" not in rest


def test_a_next_token_can_be_used_again_for_the_same_page() -> None:
    # our choice (docs/fidelity.md): tokens name a stable snapshot position
    with mock_securetunneling(seed=1):
        client = make_client()
        for _ in range(3):
            client.open_tunnel()
        token = client.list_tunnels(maxResults=1)["nextToken"]
        again = [ids(client.list_tunnels(maxResults=1, nextToken=token)) for _ in range(2)]
    assert again[0] == again[1]


def test_tunnel_deleted_while_paging_is_skipped() -> None:
    # AWS: a deleted tunnel can not be described or listed
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = [client.open_tunnel()["tunnelId"] for _ in range(4)]
        first = client.list_tunnels(maxResults=2)
        client.close_tunnel(tunnelId=opened[1], delete=True)
        second = client.list_tunnels(maxResults=2, nextToken=first["nextToken"])
    assert ids(first) == [opened[3], opened[2]]
    assert ids(second) == [opened[0]]
    assert "nextToken" not in second


def test_thing_name_filter_pages_through_matching_tunnels_only() -> None:
    # AWS: thingName filter and maxResults together
    with mock_securetunneling(seed=1):
        client = make_client()
        mine = []
        for i in range(6):
            thing = "mine" if i % 2 == 0 else "other"
            response = client.open_tunnel(destinationConfig={"thingName": thing, "services": ["S"]})
            if thing == "mine":
                mine.append(response["tunnelId"])
        first = client.list_tunnels(thingName="mine", maxResults=2)
        second = client.list_tunnels(thingName="mine", maxResults=2, nextToken=first["nextToken"])
    assert ids(first) + ids(second) == mine[::-1]
    assert "nextToken" not in second


def test_unknown_next_token_is_invalid_request_with_a_clear_message() -> None:
    # docs/fidelity.md: well-formed but not allowed -> InvalidRequestException naming the rule
    with mock_securetunneling(seed=1):
        error = client_error(make_client().list_tunnels, nextToken="bm90LWEtdG9rZW4=")
    assert_error(
        error,
        "InvalidRequestException",
        "Invalid nextToken 'bm90LWEtdG9rZW4=': it was not issued by ListTunnels",
    )


def test_next_token_reused_with_a_different_thing_name_is_invalid_request() -> None:
    # docs/fidelity.md: InvalidRequestException names the rule
    with mock_securetunneling(seed=1):
        client = make_client()
        for _ in range(2):
            client.open_tunnel(destinationConfig={"thingName": "a", "services": ["SSH"]})
        token = client.list_tunnels(thingName="a", maxResults=1)["nextToken"]
        other_thing = client_error(
            client.list_tunnels, thingName="b", maxResults=1, nextToken=token
        )
        no_thing = client_error(client.list_tunnels, maxResults=1, nextToken=token)
        unfiltered_token = client.list_tunnels(maxResults=1)["nextToken"]
        added_thing = client_error(client.list_tunnels, thingName="a", nextToken=unfiltered_token)
    assert_error(
        other_thing,
        "InvalidRequestException",
        f"Invalid nextToken '{token}': it was issued for thingName='a', not 'b'",
    )
    assert_error(
        no_thing,
        "InvalidRequestException",
        f"Invalid nextToken '{token}': it was issued for thingName='a', not None",
    )
    assert_error(
        added_thing,
        "InvalidRequestException",
        f"Invalid nextToken '{unfiltered_token}': it was issued for thingName=None, not 'a'",
    )


def test_next_token_of_another_region_is_not_valid_here() -> None:
    # AWS: tunnels and their listings belong to one account in one region
    with mock_securetunneling(seed=1):
        east = make_client()
        for _ in range(2):
            east.open_tunnel()
        token = east.list_tunnels(maxResults=1)["nextToken"]
        error = client_error(make_client(region="eu-west-1").list_tunnels, nextToken=token)
    assert_error(
        error,
        "InvalidRequestException",
        f"Invalid nextToken '{token}': it was not issued by ListTunnels",
    )


def test_default_page_size_is_100() -> None:
    # docs/fidelity.md: "ListTunnels without maxResults returns up to 100 summaries per page"
    with mock_securetunneling(seed=1) as fake:
        opened = [fake.call("OpenTunnel", {})["tunnelId"] for _ in range(101)]
        client = make_client()
        first = client.list_tunnels()
        second = client.list_tunnels(nextToken=first["nextToken"])
    assert ids(first) == opened[:0:-1]
    assert ids(second) == [opened[0]]
    assert "nextToken" not in second


def test_exactly_max_results_tunnels_fit_on_one_page_without_next_token() -> None:
    # AWS: nextToken null/absent when there are no more results
    with mock_securetunneling(seed=1) as fake:
        for _ in range(3):
            fake.call("OpenTunnel", {})
        response = make_client().list_tunnels(maxResults=3)
    assert len(response["tunnelSummaries"]) == 3
    assert "nextToken" not in response


def test_list_tunnels_has_no_botocore_paginator() -> None:
    # AWS: "ListTunnels has no botocore paginator"
    assert make_client().can_paginate("list_tunnels") is False


def test_paging_does_not_shift_the_ids_a_seed_produces() -> None:
    # seeds replay IDs; page tokens draw from their own random stream (fixed in _fake.py)
    plain, paged = SecureTunnelFake(seed=9), SecureTunnelFake(seed=9)
    for fake in (plain, paged):
        fake.call("OpenTunnel", {})
        fake.call("OpenTunnel", {})
    token = paged.call("ListTunnels", {"maxResults": 1})["nextToken"]
    paged.call("ListTunnels", {"maxResults": 1, "nextToken": token})
    assert plain.call("OpenTunnel", {}) == paged.call("OpenTunnel", {})
