"""SecureTunnelStubber: botocore's Stubber API, queued answers first, the fake after."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ParamValidationError,
    StubAssertionError,
    StubResponseError,
    UnStubbedResponseError,
)
from botocore.stub import Stubber

from pytest_securetunnel import SecureTunnelFake, SecureTunnelStubber, mock_securetunneling
from pytest_securetunnel.stubber import ANY

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TUNNEL_ARN = "arn:aws:iot:us-east-1:123456789012:tunnel/abc"


def make_client() -> Any:
    return boto3.client("iotsecuretunneling", region_name="us-east-1", **KEYS)


def test_queued_response_wins_then_calls_fall_through_to_the_fake() -> None:
    client = make_client()
    with SecureTunnelStubber(client) as stubber:
        stubber.add_response("list_tunnels", {"tunnelSummaries": []})
        client.open_tunnel()
        assert client.list_tunnels()["tunnelSummaries"] == []
        assert len(client.list_tunnels()["tunnelSummaries"]) == 1
        stubber.assert_no_pending_responses()
    assert stubber.fake is not None
    assert [c.operation for c in stubber.fake.calls] == ["OpenTunnel", "ListTunnels"]


def test_calls_take_the_first_response_queued_for_their_operation() -> None:
    client = make_client()
    with SecureTunnelStubber(client) as stubber:
        stubber.add_response("close_tunnel", {}, {"tunnelId": "abc"})
        stubber.add_response("list_tunnels", {"tunnelSummaries": []})
        assert client.list_tunnels()["tunnelSummaries"] == []
        client.close_tunnel(tunnelId="abc")
        stubber.assert_no_pending_responses()
    assert stubber.fake is not None and stubber.fake.calls == []


def test_one_line_migration_keeps_stubber_semantics_with_strict() -> None:
    client = make_client()
    with SecureTunnelStubber(client, strict=True) as stubber:
        stubber.add_response("close_tunnel", {}, {"tunnelId": "abc"})
        client.close_tunnel(tunnelId="abc")
        with pytest.raises(UnStubbedResponseError, match="Unexpected API Call"):
            client.close_tunnel(tunnelId="abc")


def test_strict_operation_mismatch_raises_stubbers_error() -> None:
    client = make_client()
    with SecureTunnelStubber(client, strict=True) as stubber:
        stubber.add_response("close_tunnel", {})
        with pytest.raises(
            StubResponseError, match="Operation mismatch: found response for CloseTunnel"
        ):
            client.describe_tunnel(tunnelId="abc")


def test_parameter_mismatch_shows_a_diff() -> None:
    client = make_client()
    with SecureTunnelStubber(client) as stubber:
        stubber.add_response("close_tunnel", {}, {"tunnelId": "abc", "delete": True})
        with pytest.raises(StubAssertionError) as info:
            client.close_tunnel(tunnelId="abd")
    message = str(info.value)
    assert isinstance(info.value, AssertionError)
    assert "parameter 'tunnelId': expected 'abc', received 'abd'" in message
    assert "missing parameter 'delete' (expected True)" in message
    assert "-{'delete': True, 'tunnelId': 'abc'}" in message


def test_any_matches_top_level_and_nested_values() -> None:
    client = make_client()
    with SecureTunnelStubber(client) as stubber:
        stubber.add_response(
            "open_tunnel",
            {"tunnelId": "abc", "tunnelArn": TUNNEL_ARN},
            {"description": ANY, "destinationConfig": {"thingName": "dev", "services": ANY}},
        )
        result = client.open_tunnel(
            description="anything", destinationConfig={"thingName": "dev", "services": ["SSH"]}
        )
    assert result["tunnelId"] == "abc"


def test_queued_responses_are_copied_when_queued() -> None:
    # boto/botocore#2069: mutating the dict after queueing changed earlier stubs.
    client = make_client()
    response = {"tunnelSummaries": [{"tunnelId": "first"}]}
    with SecureTunnelStubber(client) as stubber:
        stubber.add_response("list_tunnels", response)
        response["tunnelSummaries"][0]["tunnelId"] = "second"
        stubber.add_response("list_tunnels", response)
        ids = [client.list_tunnels()["tunnelSummaries"][0]["tunnelId"] for _ in range(2)]
    assert ids == ["first", "second"]


def test_client_errors_match_modeled_exception_classes() -> None:
    client = make_client()
    with SecureTunnelStubber(client) as stubber:
        stubber.add_client_error(
            "describe_tunnel",
            "ResourceNotFoundException",
            "gone",
            expected_params={"tunnelId": "x"},
        )
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            client.describe_tunnel(tunnelId="x")
    assert info.value.response["Error"] == {"Code": "ResourceNotFoundException", "Message": "gone"}


def test_responses_are_validated_against_the_model_when_added() -> None:
    stubber = SecureTunnelStubber(make_client())
    with pytest.raises(ParamValidationError, match="Unknown parameter in input"):
        stubber.add_response("close_tunnel", {"unexpected": 1})


def test_pending_responses_are_reported() -> None:
    stubber = SecureTunnelStubber(make_client())
    stubber.add_response("close_tunnel", {})
    with pytest.raises(AssertionError, match=r"1 responses remaining in queue\."):
        stubber.assert_no_pending_responses()


def test_falls_through_to_the_active_mock_fake() -> None:
    client = make_client()
    with mock_securetunneling() as fake, SecureTunnelStubber(client) as stubber:
        opened = client.open_tunnel()
    assert stubber.fake is fake
    assert fake.tunnel(opened["tunnelId"]).tunnel_id == opened["tunnelId"]


def test_falls_through_to_a_given_fake() -> None:
    fake = SecureTunnelFake(seed=2)
    client = make_client()
    with SecureTunnelStubber(client, fake):
        client.open_tunnel()
    assert len(fake.tunnels()) == 1


def test_deactivate_detaches_the_fake() -> None:
    client = make_client()
    stubber = SecureTunnelStubber(client)
    stubber.activate()
    stubber.deactivate()
    handlers = client.meta.events._emitter._handlers.prefix_search(
        "before-call.iotsecuretunneling.OpenTunnel"
    )
    assert not any("_Hook" in getattr(h, "__qualname__", "") for h in handlers)


def test_coexists_with_a_plain_stubber_on_another_client() -> None:
    ours, theirs = make_client(), make_client()
    with SecureTunnelStubber(ours), Stubber(theirs) as plain:
        plain.add_response("list_tunnels", {"tunnelSummaries": []})
        ours.open_tunnel()
        assert theirs.list_tunnels()["tunnelSummaries"] == []
        assert len(ours.list_tunnels()["tunnelSummaries"]) == 1
        with pytest.raises(UnStubbedResponseError):
            theirs.list_tunnels()


def test_plain_stubber_wins_over_the_mock_on_the_same_client() -> None:
    client = make_client()
    with mock_securetunneling() as fake:
        client.open_tunnel()  # the fake's hook is now on this client
        with Stubber(client) as plain:
            plain.add_response("list_tunnels", {"tunnelSummaries": []})
            assert client.list_tunnels()["tunnelSummaries"] == []
    assert [c.operation for c in fake.calls] == ["OpenTunnel"]
