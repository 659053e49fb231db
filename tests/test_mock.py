"""The botocore hooks: process-wide routing, scoped attachment, decorators, aiobotocore."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.client import BaseClient
from botocore.endpoint import Endpoint
from botocore.exceptions import ClientError
from botocore.retries.adaptive import ClientRateLimiter
from dateutil.tz import tzlocal

from pytest_securetunnel import SecureTunnelFake, attach, mock_securetunneling
from pytest_securetunnel._router import _Router, _router

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def make_client(region: str = "us-east-1", session: Any = None) -> Any:
    factory = session or boto3
    return factory.client("iotsecuretunneling", region_name=region, **KEYS)


def block_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fail any request that reaches botocore's HTTP sender; return what was attempted."""
    attempts: list[Any] = []

    def refuse(self: Any, request: Any) -> Any:
        attempts.append(request)
        raise AssertionError(f"a request reached the network: {request.url}")

    monkeypatch.setattr("botocore.endpoint.Endpoint._send", refuse)
    return attempts


def test_client_created_before_the_mock_is_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)
    client = make_client()
    with mock_securetunneling(seed=3) as fake:
        opened = client.open_tunnel()
    assert fake.tunnel(opened["tunnelId"]).arn == opened["tunnelArn"]


def test_clients_from_any_session_are_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)
    with mock_securetunneling() as fake:
        from_boto3_session = make_client(session=boto3.Session())
        from_botocore = botocore.session.get_session().create_client(
            "iotsecuretunneling", region_name="us-east-1", **KEYS
        )
        a = from_boto3_session.open_tunnel()["tunnelId"]
        b = from_botocore.open_tunnel()["tunnelId"]
    assert [t.tunnel_id for t in fake.tunnels()] == [b, a]


def test_each_activation_gets_a_fresh_fake() -> None:
    client = make_client()
    with mock_securetunneling():
        first = client.open_tunnel()["tunnelId"]
    with mock_securetunneling() as fake:
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.describe_tunnel(tunnelId=first)
        assert fake.tunnels() == []


def test_nested_blocks_restore_the_outer_fake() -> None:
    client = make_client()
    with mock_securetunneling() as outer:
        client.open_tunnel()
        with mock_securetunneling() as inner:
            client.open_tunnel()
            client.open_tunnel()
        client.open_tunnel()
    assert (len(outer.tunnels()), len(inner.tunnels())) == (2, 2)


def test_leaving_the_block_removes_every_hook() -> None:
    # The plugin's real-call guard keeps the patch installed for the session; the
    # block must leave it exactly as it found it.
    original = BaseClient.__dict__["_make_api_call"]
    client = make_client()
    with mock_securetunneling():
        client.open_tunnel()
        assert hasattr(BaseClient.__dict__["_make_api_call"], "__wrapped__")
    assert BaseClient.__dict__["_make_api_call"] is original
    assert _router.active() is None
    handlers = client.meta.events._emitter._lookup_cache.get(
        "before-call.iotsecuretunneling.OpenTunnel"
    )
    names = [getattr(h, "__qualname__", "") for h in (handlers or [])]
    assert not any("_Hook" in name for name in names)


def test_other_services_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = block_network(monkeypatch)
    sts = boto3.client("sts", region_name="us-east-1", **KEYS)
    with mock_securetunneling(), pytest.raises(AssertionError, match="reached the network"):
        sts.get_caller_identity()
    assert len(attempts) == 1


def test_responses_have_the_types_botocore_parses() -> None:
    # Timestamps are epoch numbers on the wire (AWS API reference) and botocore gives
    # datetimes in tzlocal().
    with mock_securetunneling():
        client = make_client()
        tunnel_id = client.open_tunnel()["tunnelId"]
        tunnel = client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]
    assert isinstance(tunnel["createdAt"].tzinfo, tzlocal)
    assert tunnel["sourceConnectionState"]["lastUpdatedAt"] == tunnel["createdAt"]


def test_repeated_answers_are_independent_copies() -> None:
    with mock_securetunneling():
        client = make_client()
        tunnel_id = client.open_tunnel(tags=[{"key": "k", "value": "v"}])["tunnelId"]
        first = client.describe_tunnel(tunnelId=tunnel_id)
        first["tunnel"]["tags"].append({"key": "mutated", "value": "x"})
        second = client.describe_tunnel(tunnelId=tunnel_id)
    assert second["tunnel"]["tags"] == [{"key": "k", "value": "v"}]
    assert first["ResponseMetadata"]["RequestId"] != second["ResponseMetadata"]["RequestId"]


def test_memoised_parse_equals_a_fresh_parse() -> None:
    with mock_securetunneling(seed=11) as fake:
        client = make_client()
        tunnel_id = client.open_tunnel(description="d")["tunnelId"]
        cached = [client.describe_tunnel(tunnelId=tunnel_id) for _ in range(2)][1]
    wire = fake.handle("DescribeTunnel", json.dumps({"tunnelId": tunnel_id}).encode())
    parser = client._endpoint._response_parser_factory.create_parser("json")
    model = client.meta.service_model.operation_model("DescribeTunnel")
    fresh = parser.parse(
        {"status_code": wire.status, "headers": wire.headers, "body": wire.body},
        model.output_shape,
    )
    fresh["ResponseMetadata"]["RetryAttempts"] = 0
    cached_meta, fresh_meta = cached.pop("ResponseMetadata"), fresh.pop("ResponseMetadata")
    assert cached == fresh
    assert set(cached_meta) == set(fresh_meta)
    assert cached_meta["HTTPStatusCode"] == fresh_meta["HTTPStatusCode"] == 200


def test_errors_are_real_client_errors() -> None:
    with mock_securetunneling():
        client = make_client()
        with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
            client.describe_tunnel(tunnelId="missing")
    error = info.value
    assert isinstance(error, ClientError)
    assert error.response["Error"] == {
        "Code": "ResourceNotFoundException",
        "Message": "Tunnel missing not found",
    }
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_decorator_on_a_function_passes_through_the_return_value() -> None:
    @mock_securetunneling()
    def open_one() -> str:
        return str(make_client().open_tunnel()["tunnelId"])

    assert open_one() != open_one()
    assert _router.active() is None


def test_decorator_on_an_async_function() -> None:
    @mock_securetunneling(seed=5)
    async def open_one() -> str:
        assert _router.active() is not None
        return str(make_client().open_tunnel()["tunnelId"])

    first = asyncio.run(open_one())
    assert first == asyncio.run(open_one())  # same seed, fresh fake each call
    assert _router.active() is None


def test_decorator_on_a_class_wraps_each_test_method() -> None:
    seen: list[SecureTunnelFake | None] = []

    @mock_securetunneling()
    class Suite:
        def test_one(self) -> None:
            seen.append(_router.active())

        def helper(self) -> None:
            seen.append(_router.active())

    Suite().test_one()
    Suite().helper()
    assert seen[0] is not None and seen[1] is None


def test_region_and_account_pick_the_backend() -> None:
    with mock_securetunneling() as fake:
        fake.accounts["AKIDOTHER"] = "210987654321"
        east, west = make_client("us-east-1"), make_client("eu-west-1")
        other = boto3.client(
            "iotsecuretunneling",
            region_name="us-east-1",
            aws_access_key_id="AKIDOTHER",
            aws_secret_access_key="x",
        )
        arn = east.open_tunnel()["tunnelArn"]
        assert west.list_tunnels()["tunnelSummaries"] == []
        assert other.list_tunnels()["tunnelSummaries"] == []
        assert other.open_tunnel()["tunnelArn"].startswith("arn:aws:iot:us-east-1:210987654321:")
    assert arn.startswith("arn:aws:iot:us-east-1:123456789012:tunnel/")


def test_http_mode_runs_signing_and_retries() -> None:
    # botocore's standard retry mode treats LimitExceededException as throttling
    # (botocore's retries/standard.py), so the whole HTTP path sends it three times.
    with mock_securetunneling(http=True) as fake:
        fake.quotas.open_tunnels = 0
        client = boto3.client(
            "iotsecuretunneling",
            region_name="eu-west-1",
            config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 3}),
            **KEYS,
        )
        with pytest.raises(client.exceptions.LimitExceededException) as info:
            client.open_tunnel()
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert [c.operation for c in fake.calls] == ["OpenTunnel"] * 3
    assert {c.region for c in fake.calls} == {"eu-west-1"}


def test_the_last_user_removes_the_patches() -> None:
    router = _Router()
    patched = (BaseClient, Endpoint, ClientRateLimiter)
    names = ("_make_api_call", "_needs_retry", "on_sending_request")
    before = [cls.__dict__[name] for cls, name in zip(patched, names, strict=True)]
    fake = SecureTunnelFake()
    router.push(fake, http=True)
    assert all(
        cls.__dict__[name] is not was for cls, name, was in zip(patched, names, before, strict=True)
    )
    router.pop(fake)
    assert [cls.__dict__[name] for cls, name in zip(patched, names, strict=True)] == before


@pytest.mark.securetunnel_allow_aws
def test_attach_to_one_client_leaves_others_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = block_network(monkeypatch)
    attached, other = make_client(), make_client()
    with attach(attached) as fake:
        attached.open_tunnel()
        with pytest.raises(AssertionError, match="reached the network"):
            other.list_tunnels()
    assert len(fake.tunnels()) == 1 and len(attempts) == 1
    assert _router.active() is None


def test_attach_to_a_session_reaches_its_later_clients() -> None:
    session = boto3.Session()
    fake = SecureTunnelFake(seed=1)
    attachment = attach(session, fake)
    client = make_client(session=session)
    client.open_tunnel()
    attachment.detach()
    assert len(fake.tunnels()) == 1


def test_attach_refuses_other_services() -> None:
    sts = boto3.client("sts", region_name="us-east-1", **KEYS)
    with pytest.raises(TypeError, match="needs an iotsecuretunneling client, got a sts client"):
        attach(sts)


def test_stopping_out_of_order_is_an_error() -> None:
    outer, inner = mock_securetunneling(), mock_securetunneling()
    outer.start()
    inner.start()
    with pytest.raises(RuntimeError, match="reverse order"):
        outer.stop()
    inner.stop()
    outer.stop()


def test_aiobotocore_clients_are_routed() -> None:
    aiobotocore_session = pytest.importorskip("aiobotocore.session")

    async def scenario() -> tuple[str, str]:
        session = aiobotocore_session.get_session()
        async with session.create_client(
            "iotsecuretunneling", region_name="us-east-1", **KEYS
        ) as c:
            opened = await c.open_tunnel(destinationConfig={"services": ["SSH"]})
            described = await c.describe_tunnel(tunnelId=opened["tunnelId"])
            return str(opened["tunnelId"]), str(described["tunnel"]["status"])

    with mock_securetunneling() as fake:
        tunnel_id, status = asyncio.run(scenario())
    assert status == "OPEN"
    assert fake.tunnel(tunnel_id).services == ["SSH"]


def test_aiobotocore_errors_carry_modeled_members() -> None:
    aiobotocore_session = pytest.importorskip("aiobotocore.session")

    async def scenario() -> dict[str, Any]:
        session = aiobotocore_session.get_session()
        async with session.create_client(
            "iotsecuretunneling", region_name="us-east-1", **KEYS
        ) as c:
            try:
                await c.describe_tunnel(tunnelId="missing")
            except c.exceptions.ResourceNotFoundException as error:
                return dict(error.response)
        raise AssertionError("no error raised")

    with mock_securetunneling():
        response = asyncio.run(scenario())
    assert response["Error"]["Code"] == "ResourceNotFoundException"
    assert response["message"] == "Tunnel missing not found"
