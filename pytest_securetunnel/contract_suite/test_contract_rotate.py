"""RotateTunnelAccessToken (AWS API reference; docs/fidelity.md where AWS is silent)."""

from __future__ import annotations

import pytest

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract


def _fields(answer: dict[str, object]) -> set[str]:
    return {k for k in answer if k != "ResponseMetadata"}


@pytest.mark.parametrize(
    ("mode", "fields"),
    [
        ("SOURCE", {"tunnelArn", "sourceAccessToken"}),
        ("DESTINATION", {"tunnelArn", "destinationAccessToken"}),
        ("ALL", {"tunnelArn", "sourceAccessToken", "destinationAccessToken"}),
    ],
)
def test_rotation_answers_new_tokens_for_the_mode_only(
    securetunnel_contract: ContractContext, mode: str, fields: set[str]
) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel()
    rotated = ctx.client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode=mode)
    assert _fields(rotated) == fields
    assert rotated["tunnelArn"] == opened["tunnelArn"]
    for key in fields - {"tunnelArn"}:
        assert rotated[key] != opened[key]


def test_source_rotation_with_a_destination_config_is_an_invalid_request(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    with ctx.raises(
        "InvalidRequestException", "You can not use DestinationConfig with source clientMode."
    ):
        ctx.client.rotate_tunnel_access_token(
            tunnelId=tunnel_id, clientMode="SOURCE", destinationConfig={"services": ["SSH"]}
        )


def test_rotating_a_closed_tunnel_is_an_invalid_request(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    ctx.client.close_tunnel(tunnelId=tunnel_id)
    with ctx.raises("InvalidRequestException"):
        ctx.client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL")


@pytest.mark.securetunnel_contract(tunnels=0)
def test_rotating_an_unknown_tunnel_is_resource_not_found(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.rotate_tunnel_access_token(
            tunnelId="00000000-0000-4000-8000-000000000000", clientMode="ALL"
        )


def test_an_unknown_client_mode_is_a_validation_error(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    with ctx.raises("ValidationException"):
        ctx.client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="BOTH")


def test_destination_rotation_with_a_config_replaces_the_destination_config(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel(
        destinationConfig={"thingName": "contract-thing", "services": ["SSH"]}
    )["tunnelId"]
    ctx.client.rotate_tunnel_access_token(
        tunnelId=tunnel_id,
        clientMode="DESTINATION",
        destinationConfig={"thingName": "contract-thing", "services": ["VNC"]},
    )
    tunnel = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["destinationConfig"] == {"thingName": "contract-thing", "services": ["VNC"]}


def test_rotation_keeps_the_creation_time_and_lifetime(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 60})["tunnelId"]
    before = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    ctx.client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL")
    after = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert after["createdAt"] == before["createdAt"]
    assert after["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 60}
    assert after["status"] == "OPEN"


@pytest.mark.securetunnel_contract(clock=True)
def test_rotation_does_not_extend_the_lifetime(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 2})["tunnelId"]
    ctx.advance_clock(seconds=90)
    ctx.client.rotate_tunnel_access_token(tunnelId=tunnel_id, clientMode="ALL")
    ctx.advance_clock(seconds=31)
    assert ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["status"] == "CLOSED"
