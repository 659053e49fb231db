"""RotateTunnelAccessToken: per-mode tokens, revocation, destinationConfig, lifetime."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers_service import FROZEN_AT, assert_error, client_error, frozen, make_client

from pytest_securetunnel.mock import mock_securetunneling
from pytest_securetunnel.service import SecureTunnelFake

MINUTE = dt.timedelta(minutes=1)


def revoked(fake: SecureTunnelFake, token: str) -> bool:
    record = fake.token(token)
    assert record is not None, "the fake does not know this token"
    return record.revoked


@pytest.mark.parametrize(
    ("mode", "returned"),
    [
        ("SOURCE", {"tunnelArn", "sourceAccessToken"}),
        ("DESTINATION", {"tunnelArn", "destinationAccessToken"}),
        ("ALL", {"tunnelArn", "sourceAccessToken", "destinationAccessToken"}),
    ],
)
def test_rotate_returns_only_that_modes_tokens_plus_tunnel_arn(
    mode: str, returned: set[str]
) -> None:
    # AWS: SOURCE -> sourceAccessToken + tunnelArn; DESTINATION -> destination token +
    # tunnelArn (CONFIRMED); ALL -> both (INFERRED)
    with mock_securetunneling(seed=1):
        client = make_client()
        opened = client.open_tunnel()
        response = client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode=mode)
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert set(body) == returned
    assert body["tunnelArn"] == opened["tunnelArn"]


@pytest.mark.parametrize(
    ("mode", "rotated"),
    [
        ("SOURCE", {"sourceAccessToken"}),
        ("DESTINATION", {"destinationAccessToken"}),
        ("ALL", {"sourceAccessToken", "destinationAccessToken"}),
    ],
)
def test_rotate_revokes_old_tokens_of_that_mode_only_and_issues_new_ones(
    mode: str, rotated: set[str]
) -> None:
    # AWS: "revokes the current CAT of that mode and issues a new one"
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel()
        response = client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode=mode)
        stored = fake.tunnel(opened["tunnelId"])
        for key in ("sourceAccessToken", "destinationAccessToken"):
            old = opened[key]
            assert revoked(fake, old) is (key in rotated)
            if key in rotated:
                new = response[key]
                assert new != old
                assert not revoked(fake, new)
                record = fake.token(new)
                assert record is not None
                assert record.tunnel_id == opened["tunnelId"]
                assert record.mode == ("source" if key.startswith("source") else "destination")
        assert stored.source_token == response.get("sourceAccessToken", opened["sourceAccessToken"])
        assert stored.destination_token == response.get(
            "destinationAccessToken", opened["destinationAccessToken"]
        )


def test_rotating_twice_revokes_the_first_rotated_token_too() -> None:
    # AWS: rotation revokes the *current* token of that mode
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        first = client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="SOURCE")
        second = client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="SOURCE")
        assert revoked(fake, first["sourceAccessToken"])
        assert not revoked(fake, second["sourceAccessToken"])


def test_destination_config_with_source_mode_is_invalid_request() -> None:
    # AWS API reference: "You can not use DestinationConfig with source clientMode";
    # docs/fidelity.md: InvalidRequestException
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"thingName": "t", "services": ["SSH"]})
        error = client_error(
            client.rotate_tunnel_access_token,
            tunnelId=opened["tunnelId"],
            clientMode="SOURCE",
            destinationConfig={"thingName": "t", "services": ["SSH"]},
        )
        assert not revoked(fake, opened["sourceAccessToken"])
        assert len(fake.notifications) == 1
    assert_error(
        error,
        "InvalidRequestException",
        "You can not use DestinationConfig with source clientMode.",
    )


def test_destination_rotation_with_destination_config_replaces_it() -> None:
    # AWS: DESTINATION rotation with destinationConfig re-targets the destination
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel(
            destinationConfig={"thingName": "old-thing", "services": ["SSH"]}
        )["tunnelId"]
        client.rotate_tunnel_access_token(
            tunnelId=tunnel_id,
            clientMode="DESTINATION",
            destinationConfig={"thingName": "new-thing", "services": ["VNC", "HTTP"]},
        )
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["destinationConfig"] == {"thingName": "new-thing", "services": ["VNC", "HTTP"]}


def test_all_rotation_with_destination_config_sets_it_on_a_tunnel_without_one() -> None:
    # AWS: destinationConfig is allowed with DESTINATION and ALL
    with mock_securetunneling(seed=1):
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        client.rotate_tunnel_access_token(
            tunnelId=tunnel_id,
            clientMode="ALL",
            destinationConfig={"thingName": "device", "services": ["SSH"]},
        )
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["destinationConfig"] == {"thingName": "device", "services": ["SSH"]}


def test_rotation_destination_config_obeys_the_services_rules() -> None:
    # docs/fidelity.md: 4 services -> LimitExceededException; duplicates -> InvalidRequestException
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(destinationConfig={"thingName": "t", "services": ["SSH"]})
        too_many = client_error(
            client.rotate_tunnel_access_token,
            tunnelId=opened["tunnelId"],
            clientMode="DESTINATION",
            destinationConfig={"services": ["A", "B", "C", "D"]},
        )
        duplicate = client_error(
            client.rotate_tunnel_access_token,
            tunnelId=opened["tunnelId"],
            clientMode="ALL",
            destinationConfig={"services": ["A", "A"]},
        )
        assert not revoked(fake, opened["destinationAccessToken"])
        assert fake.tunnel(opened["tunnelId"]).destination_config == {
            "thingName": "t",
            "services": ["SSH"],
        }
    assert_error(
        too_many,
        "LimitExceededException",
        "Too many services: 4 given, at most 3 services per tunnel are allowed",
    )
    assert_error(
        duplicate, "InvalidRequestException", "Duplicate service 'A' in destinationConfig.services"
    )


def test_rotation_never_extends_the_lifetime() -> None:
    # AWS: "Rotation does not extend lifetime"
    with mock_securetunneling(seed=1), frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 30})["tunnelId"]
        clock.move_to(FROZEN_AT + 20 * MINUTE)
        client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL")
        clock.move_to(FROZEN_AT + 30 * MINUTE)
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["status"] == "CLOSED"
    assert tunnel["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 30}
    assert tunnel["createdAt"] == FROZEN_AT
    assert tunnel["lastUpdatedAt"] == FROZEN_AT + 30 * MINUTE


def test_rotation_moves_last_updated_at_but_not_created_at() -> None:
    # AWS: DescribeTunnel lastUpdatedAt reflects the latest change
    with mock_securetunneling(seed=1), frozen() as clock:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        clock.move_to(FROZEN_AT + 7 * MINUTE)
        client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="SOURCE")
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
        summary = client.list_tunnels()["tunnelSummaries"][0]
    assert (tunnel["createdAt"], tunnel["lastUpdatedAt"]) == (FROZEN_AT, FROZEN_AT + 7 * MINUTE)
    assert summary["lastUpdatedAt"] == FROZEN_AT + 7 * MINUTE
    assert tunnel["status"] == "OPEN"


@pytest.mark.parametrize("how", ["closed", "expired"])
def test_rotate_on_a_closed_tunnel_is_invalid_request(how: str) -> None:
    # docs/fidelity.md: "rotate on a CLOSED tunnel" -> InvalidRequestException
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        opened = client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 5})
        tunnel_id = opened["tunnelId"]
        if how == "closed":
            client.close_tunnel(tunnelId=tunnel_id)
        else:
            fake.clock.advance(minutes=5)
        error = client_error(
            client.rotate_tunnel_access_token, tunnelId=tunnel_id, clientMode="ALL"
        )
        assert not revoked(fake, opened["sourceAccessToken"])
    assert_error(
        error,
        "InvalidRequestException",
        f"Tunnel {tunnel_id} is CLOSED: the access tokens of a closed tunnel can not be rotated",
    )


def test_rotate_unknown_tunnel_is_resource_not_found() -> None:
    # AWS: ResourceNotFoundException for all ops except OpenTunnel/ListTunnels
    unknown = "11111111-1111-4111-8111-111111111111"
    with mock_securetunneling(seed=1):
        client = make_client()
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            client.rotate_tunnel_access_token(tunnelId=unknown, clientMode="SOURCE")
    assert_error(info.value, "ResourceNotFoundException", f"Tunnel {unknown} not found")


def test_rotated_tokens_are_recorded_in_calls() -> None:
    # _wire.py: every answered call is recorded with its response
    with mock_securetunneling(seed=1) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        response = client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="DESTINATION")
    last = fake.calls[-1]
    expected: dict[str, Any] = {
        "tunnelArn": response["tunnelArn"],
        "destinationAccessToken": response["destinationAccessToken"],
    }
    assert (last.operation, last.params, last.response) == (
        "RotateTunnelAccessToken",
        {"tunnelId": tunnel_id, "clientMode": "DESTINATION"},
        expected,
    )


def test_rotate_destination_config_without_thing_name_keeps_the_stored_thing() -> None:
    # docs/fidelity.md: the notification goes to the request's thing "or the stored one".

    with mock_securetunneling(seed=4) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel(
            destinationConfig={"thingName": "robot", "services": ["SSH"]}
        )["tunnelId"]
        client.rotate_tunnel_access_token(
            tunnelId=tunnel_id, clientMode="DESTINATION", destinationConfig={"services": ["VNC"]}
        )
        config = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["destinationConfig"]
    assert config == {"thingName": "robot", "services": ["VNC"]}
    assert [n.payload["services"] for n in fake.notifications.for_thing("robot")] == [
        ["SSH"],
        ["VNC"],
    ]
