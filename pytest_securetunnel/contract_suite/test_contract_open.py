"""OpenTunnel and DescribeTunnel: what a new tunnel looks like (AWS API reference)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from pytest_securetunnel.contract import ContractContext

pytestmark = pytest.mark.securetunnel_contract

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_open_with_no_arguments_answers_an_id_an_arn_and_two_tokens(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    opened = ctx.client.open_tunnel()
    assert UUID.fullmatch(opened["tunnelId"]), opened["tunnelId"]
    arn_pattern = rf"arn:aws(-[a-z]+)*:iot:{ctx.region}:\d{{12}}:tunnel/{opened['tunnelId']}"
    assert re.fullmatch(arn_pattern, opened["tunnelArn"]), opened["tunnelArn"]
    assert opened["sourceAccessToken"]
    assert opened["destinationAccessToken"]
    assert opened["sourceAccessToken"] != opened["destinationAccessToken"]


def test_a_new_tunnel_is_open_with_both_sides_disconnected(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    tunnel = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["status"] == "OPEN"
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationConnectionState"]["status"] == "DISCONNECTED"
    created: dt.datetime = tunnel["createdAt"]
    assert created.tzinfo is not None
    assert created <= tunnel["lastUpdatedAt"]


def test_describe_echoes_what_open_was_given(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    config = {"thingName": "contract-thing", "services": ["SSH", "VNC"]}
    opened = ctx.client.open_tunnel(
        description="contract test tunnel",
        destinationConfig=config,
        timeoutConfig={"maxLifetimeTimeoutMinutes": 30},
        tags=[{"key": "team", "value": "contract"}],
    )
    tunnel = ctx.client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["tunnelId"] == opened["tunnelId"]
    assert tunnel["tunnelArn"] == opened["tunnelArn"]
    assert tunnel["description"] == "contract test tunnel"
    assert tunnel["destinationConfig"] == config
    assert tunnel["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 30}
    assert ctx.user_tags(tunnel.get("tags")) == {"team": "contract"}


def test_timeout_defaults_to_720_minutes_and_unset_fields_are_absent(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    tunnel_id = ctx.client.open_tunnel()["tunnelId"]
    tunnel = ctx.client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert tunnel["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 720}
    assert "destinationConfig" not in tunnel
    assert "description" not in tunnel


@pytest.mark.securetunnel_contract(tunnels=2)
def test_each_open_gives_new_ids_and_tokens(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    first = ctx.client.open_tunnel(description="same")
    second = ctx.client.open_tunnel(description="same")
    for key in ("tunnelId", "tunnelArn", "sourceAccessToken", "destinationAccessToken"):
        assert first[key] != second[key], key


def test_more_than_three_services_is_limit_exceeded(securetunnel_contract: ContractContext) -> None:
    ctx = securetunnel_contract
    with ctx.raises("LimitExceededException"):
        ctx.client.open_tunnel(destinationConfig={"services": ["S1", "S2", "S3", "S4"]})


INVALID_OPENS: list[tuple[str, dict[str, Any]]] = [
    ("lifetime-over-720", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 721}}),
    ("thing-name-with-space", {"destinationConfig": {"thingName": "a b", "services": ["SSH"]}}),
    ("service-with-slash", {"destinationConfig": {"services": ["ssh/22"]}}),
    ("description-with-control-char", {"description": "bell\x07"}),
    ("reserved-tag-key", {"tags": [{"key": "aws:owner", "value": "x"}]}),
    ("tag-key-too-long", {"tags": [{"key": "k" * 129, "value": "x"}]}),
]


@pytest.mark.parametrize(
    "params", [p for _, p in INVALID_OPENS], ids=[name for name, _ in INVALID_OPENS]
)
def test_open_with_a_value_the_model_forbids_is_a_validation_error(
    securetunnel_contract: ContractContext, params: dict[str, Any]
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("ValidationException"):
        ctx.client.open_tunnel(**params)


@pytest.mark.securetunnel_contract(tunnels=0)
def test_describe_of_an_unknown_tunnel_is_resource_not_found(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("ResourceNotFoundException"):
        ctx.client.describe_tunnel(tunnelId="00000000-0000-4000-8000-000000000000")


@pytest.mark.securetunnel_contract(tunnels=0)
def test_describe_with_an_id_the_model_forbids_is_a_validation_error(
    securetunnel_contract: ContractContext,
) -> None:
    ctx = securetunnel_contract
    with ctx.raises("ValidationException"):
        ctx.client.describe_tunnel(tunnelId="not a/valid id")
