"""Retries: both hook levels attempt as often as the client's own retry configuration."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.retries import bucket

from pytest_securetunnel import SecureTunnelFake, attach, mock_securetunneling
from pytest_securetunnel._hook import _RawResponse
from pytest_securetunnel.service import WireResponse

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LOOPBACK = "http://127.0.0.1:9"  # never reached: every request is answered in process


@pytest.fixture(autouse=True)
def _no_retry_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)


class Unavailable:
    """Answers 503 ServiceUnavailable for the first ``count`` requests, then the fake."""

    def __init__(self, fake: SecureTunnelFake, count: int) -> None:
        self.fake, self.count, self.seen = fake, count, 0
        self._handle = fake.handle

    def handle(self, operation: str, body: bytes, **kwargs: Any) -> WireResponse:
        self.seen += 1
        if self.seen <= self.count:
            body = json.dumps({"__type": "ServiceUnavailableException", "message": "x"})
            headers = {"content-type": "application/x-amz-json-1.1", "x-amzn-requestid": "r"}
            return WireResponse(503, headers, body.encode())
        return self._handle(operation, body, **kwargs)


def client(retries: dict[str, Any], endpoint_url: str | None = None) -> Any:
    return boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        config=Config(retries=retries),
        endpoint_url=endpoint_url,
        **KEYS,
    )


def outcome(call: Any) -> tuple[str, int, bool]:
    try:
        response = call()
        code = "ok"
    except Exception as error:  # a ClientError of the client's own class
        response = error.response  # type: ignore[attr-defined]
        code = response["Error"]["Code"]
    metadata = response["ResponseMetadata"]
    return code, metadata["RetryAttempts"], bool(metadata.get("MaxAttemptsReached"))


def botocore_reference(
    retries: dict[str, Any], failing: int | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[str, int, bool], int]:
    """What botocore's own endpoint does: its retry loop, with only the socket replaced."""
    fake = SecureTunnelFake(quotas=None)
    if failing is None:
        fake.quotas.open_tunnels = 0
    answers = Unavailable(fake, failing or 0)

    def send(self: Any, request: Any) -> AWSResponse:
        wire = answers.handle(request.headers["X-Amz-Target"].decode(), request.body)
        return AWSResponse(request.url, wire.status, wire.headers, _RawResponse(wire.body))

    with monkeypatch.context() as patch:
        patch.setattr(botocore.endpoint.Endpoint, "_send", send)
        patch.setattr(botocore.endpoint.time, "sleep", lambda seconds: None)
        patch.setattr(bucket.TokenBucket, "_sleep_amount", lambda self, amount: 0)
        result = outcome(client(retries, LOOPBACK).open_tunnel)
    return result, answers.seen


CONFIGS = [
    pytest.param({"mode": "standard"}, None, ("LimitExceededException", 2, True), 3, id="standard"),
    pytest.param({"mode": "adaptive"}, None, ("LimitExceededException", 2, True), 3, id="adaptive"),
    pytest.param({"mode": "legacy"}, None, ("LimitExceededException", 0, False), 1, id="legacy"),
    pytest.param(
        {"mode": "standard", "max_attempts": 4},
        None,
        ("LimitExceededException", 4, True),
        5,
        id="standard-max_attempts",
    ),
    pytest.param(
        {"mode": "adaptive", "total_max_attempts": 2},
        None,
        ("LimitExceededException", 1, True),
        2,
        id="adaptive-total_max_attempts",
    ),
    pytest.param(
        {"mode": "legacy"}, 9, ("ServiceUnavailableException", 4, True), 5, id="legacy-503"
    ),
    pytest.param(
        {"mode": "legacy", "max_attempts": 2},
        9,
        ("ServiceUnavailableException", 2, True),
        3,
        id="legacy-503-max_attempts",
    ),
    pytest.param(
        {"mode": "legacy", "total_max_attempts": 2},
        9,
        ("ServiceUnavailableException", 1, True),
        2,
        id="legacy-503-total_max_attempts",
    ),
    pytest.param({"mode": "standard"}, 1, ("ok", 1, False), 2, id="standard-503-then-ok"),
]


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
@pytest.mark.parametrize(("retries", "failing", "expected", "attempts"), CONFIGS)
def test_attempts_match_botocore(
    http: bool,
    retries: dict[str, Any],
    failing: int | None,
    expected: tuple[str, int, bool],
    attempts: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert botocore_reference(retries, failing, monkeypatch) == (expected, attempts)
    with mock_securetunneling(http=http) as fake:
        answers = Unavailable(fake, failing or 0)
        monkeypatch.setattr(fake, "handle", answers.handle)
        if failing is None:
            fake.quotas.open_tunnels = 0
        assert outcome(client(retries).open_tunnel) == expected
    assert answers.seen == attempts


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
def test_calls_record_each_attempt_and_its_backoff_without_sleeping(
    http: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with mock_securetunneling(http=http) as fake:
        fake.quotas.open_tunnels = 0
        with pytest.raises(Exception, match="LimitExceededException"):
            client({"mode": "standard"}).open_tunnel()
    assert [(c.operation, c.attempt, c.error_code) for c in fake.calls] == [
        ("OpenTunnel", n, "LimitExceededException") for n in (1, 2, 3)
    ]
    delays = [c.retry_delay for c in fake.calls]
    assert delays[0] == 0.0 and all(delay > 0 for delay in delays[1:])
    assert slept == []


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
def test_real_sleep_sleeps_the_recorded_backoffs(
    http: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with mock_securetunneling(http=http, real_sleep=True) as fake:
        fake.quotas.open_tunnels = 0
        with pytest.raises(Exception, match="LimitExceededException"):
            client({"mode": "standard"}).open_tunnel()
    assert slept == [c.retry_delay for c in fake.calls[1:]]
    assert len(slept) == 2


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
def test_adaptive_rate_limiter_does_not_wait_for_the_fake(
    http: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    original = bucket.TokenBucket._sleep_amount

    def sleep_amount(self: Any, amount: int) -> Any:
        waits.append(original(self, amount))
        return 0

    monkeypatch.setattr(bucket.TokenBucket, "_sleep_amount", sleep_amount)
    with mock_securetunneling(http=http) as fake:
        fake.quotas.open_tunnels = 0
        throttled = client({"mode": "adaptive", "total_max_attempts": 4})
        for _ in range(3):
            assert outcome(throttled.open_tunnel) == ("LimitExceededException", 3, True)
    assert len(fake.calls) == 12
    assert waits == []


def test_a_success_reports_zero_retries_and_one_call() -> None:
    with mock_securetunneling() as fake:
        response = client({"mode": "standard"}).open_tunnel()
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert [(c.attempt, c.retry_delay) for c in fake.calls] == [(1, 0.0)]


def test_attached_clients_retry_too() -> None:
    throttled = client({"mode": "standard"})
    with attach(throttled) as fake:
        fake.quotas.open_tunnels = 0
        assert outcome(throttled.open_tunnel) == ("LimitExceededException", 2, True)
    assert [c.attempt for c in fake.calls] == [1, 2, 3]


@pytest.fixture
def aio_session() -> Any:
    return pytest.importorskip("aiobotocore.session").get_session()


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
def test_aiobotocore_in_both_modes(http: bool, aio_session: Any) -> None:
    async def scenario() -> tuple[str, str, tuple[str, int, bool]]:
        async with aio_session.create_client(
            "iotsecuretunneling",
            region_name="eu-west-1",
            config=Config(retries={"mode": "standard"}),
            **KEYS,
        ) as c:
            opened = await c.open_tunnel(destinationConfig={"services": ["SSH"]})
            described = await c.describe_tunnel(tunnelId=opened["tunnelId"])
            fake.quotas.open_tunnels = 1
            try:
                await c.open_tunnel()
            except c.exceptions.LimitExceededException as error:
                metadata = error.response["ResponseMetadata"]
                throttled = (
                    error.response["Error"]["Code"],
                    metadata["RetryAttempts"],
                    metadata["MaxAttemptsReached"],
                )
            return str(opened["tunnelId"]), str(described["tunnel"]["status"]), throttled

    with mock_securetunneling(http=http) as fake:
        tunnel_id, status, throttled = asyncio.run(scenario())
    assert status == "OPEN"
    assert fake.tunnel(tunnel_id).services == ["SSH"]
    assert fake.tunnel(tunnel_id).region == "eu-west-1"
    assert throttled == ("LimitExceededException", 2, True)
    assert [c.attempt for c in fake.calls] == [1, 1, 1, 2, 3]


@pytest.fixture
def no_credentials(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An environment with no AWS credentials, configuration or instance metadata."""
    import os

    empty = tmp_path / "empty"
    empty.write_text("")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.mark.parametrize("http", [False, True], ids=["before-call", "http"])
def test_no_credentials_needed(http: bool, no_credentials: None) -> None:
    session = boto3.Session()
    assert session.get_credentials() is None
    with mock_securetunneling(http=http) as fake:
        c = session.client("iotsecuretunneling", region_name="ap-south-1")
        arn = c.open_tunnel()["tunnelArn"]
    assert arn.startswith("arn:aws:iot:ap-south-1:123456789012:tunnel/")
    assert [(c.account_id, c.region) for c in fake.calls] == [("123456789012", "ap-south-1")]


def test_no_credentials_needed_with_aiobotocore_in_http_mode(
    no_credentials: None, aio_session: Any
) -> None:
    async def scenario() -> str:
        async with aio_session.create_client("iotsecuretunneling", region_name="us-west-2") as c:
            return str((await c.open_tunnel())["tunnelArn"])

    with mock_securetunneling(http=True):
        assert asyncio.run(scenario()).startswith("arn:aws:iot:us-west-2:123456789012:")
