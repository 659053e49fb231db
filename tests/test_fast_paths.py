"""The default hook's shortcuts give exactly what botocore's full path gives.

The ``before-call`` hook reuses botocore's parse of a repeated answer, the fake reuses
the encoding of a repeated answer, and the hook skips the ``needs-retry`` event when
the default retry handler would certainly do nothing. Each is checked here against
the full HTTP path (``http=True``: botocore's endpoint parses every response afresh
and emits every event), on two fakes with the same seed and the same frozen clock.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries import quota
from freezegun import freeze_time

from pytest_securetunnel import SecureTunnelFake, attach
from pytest_securetunnel._hook import _uuid4
from pytest_securetunnel.service._wire import _answer_key

KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(autouse=True)
def _no_retry_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)


def make_client(**config: Any) -> Any:
    return boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        config=Config(**config) if config else None,
        **KEYS,
    )


def outcome(call: Callable[[], Any]) -> Any:
    """The response (metadata but the request ID kept) or the error's response."""
    try:
        response = call()
    except ClientError as exc:
        response = exc.response
    metadata = response.pop("ResponseMetadata")
    return response, metadata["RequestId"], metadata["HTTPStatusCode"]


def exact(value: Any) -> str:
    """Text that differs whenever types, values or key order differ (datetimes with zones)."""
    return repr(value)


@pytest.fixture
def pair() -> Iterator[tuple[Any, Any]]:
    """A default-mode client and a full-HTTP-path client on twin fakes, time frozen."""
    with freeze_time("2024-05-01 12:00:00"):
        fast, full = make_client(), make_client()
        with (
            attach(fast, SecureTunnelFake(seed=5)),
            attach(full, SecureTunnelFake(seed=5), http=True),
        ):
            yield fast, full


def test_every_answer_equals_the_full_paths_fresh_parse(pair: tuple[Any, Any]) -> None:
    fast, full = pair
    steps: list[Callable[[Any, str], Any]] = [
        lambda c, t: c.describe_tunnel(tunnelId=t),
        lambda c, t: c.describe_tunnel(tunnelId=t),
        lambda c, t: c.list_tunnels(),
        lambda c, t: c.tag_resource(resourceArn=arn(c, t), tags=[{"key": "b", "value": "2"}]),
        lambda c, t: c.describe_tunnel(tunnelId=t),
        lambda c, t: c.list_tags_for_resource(resourceArn=arn(c, t)),
        lambda c, t: c.rotate_tunnel_access_token(tunnelId=t, clientMode="SOURCE"),
        lambda c, t: c.describe_tunnel(tunnelId=t),
        lambda c, t: c.close_tunnel(tunnelId=t),
        lambda c, t: c.describe_tunnel(tunnelId=t),
        lambda c, t: c.describe_tunnel(tunnelId=t),
        lambda c, t: c.describe_tunnel(tunnelId="00000000-0000-0000-0000-000000000000"),
        lambda c, t: c.open_tunnel(destinationConfig={"thingName": "x", "services": ["A"]}),
        lambda c, t: c.open_tunnel(destinationConfig={"thingName": "x", "services": ["A"]}),
    ]
    ids = []
    for client in (fast, full):
        opened = client.open_tunnel(
            description="d",
            tags=[{"key": "a", "value": "1"}],
            destinationConfig={"thingName": "t", "services": ["SSH", "HTTP"]},
        )
        ids.append(opened["tunnelId"])
    assert ids[0] == ids[1]
    for number, step in enumerate(steps):
        got = outcome(lambda: step(fast, ids[0]))  # noqa: B023 (called at once)
        want = outcome(lambda: step(full, ids[1]))  # noqa: B023
        assert exact(got) == exact(want), f"step {number}"


def arn(client: Any, tunnel_id: str) -> str:
    return str(client.describe_tunnel(tunnelId=tunnel_id)["tunnel"]["tunnelArn"])


def test_mutating_an_answer_changes_no_later_answer(
    pair: tuple[Any, Any],
) -> None:
    fast, full = pair
    tunnel_ids = [
        c.open_tunnel(
            tags=[{"key": "a", "value": "1"}],
            destinationConfig={"thingName": "t", "services": ["SSH"]},
        )["tunnelId"]
        for c in (fast, full)
    ]
    first = fast.describe_tunnel(tunnelId=tunnel_ids[0])
    first["tunnel"]["tags"].append({"key": "mutated", "value": "x"})
    first["tunnel"]["destinationConfig"]["services"].clear()
    first["tunnel"]["sourceConnectionState"]["status"] = "CONNECTED"
    first["tunnel"].pop("createdAt")
    first["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] = "changed"
    full.describe_tunnel(tunnelId=tunnel_ids[1])  # keep the twins' request IDs in step
    got = outcome(lambda: fast.describe_tunnel(tunnelId=tunnel_ids[0]))
    want = outcome(lambda: full.describe_tunnel(tunnelId=tunnel_ids[1]))
    assert exact(got) == exact(want)


def test_mutating_the_recorded_response_changes_no_later_answer() -> None:
    with freeze_time("2024-05-01 12:00:00"):
        fast, full = make_client(), make_client()
        fast_fake, full_fake = SecureTunnelFake(seed=3), SecureTunnelFake(seed=3)
        with attach(fast, fast_fake), attach(full, full_fake, http=True):
            tunnel_ids = [c.open_tunnel()["tunnelId"] for c in (fast, full)]
            for client, tunnel_id in zip((fast, full), tunnel_ids, strict=True):
                client.describe_tunnel(tunnelId=tunnel_id)
            fast_fake.calls[-1].response["tunnel"]["status"] = "CLOSED"
            fast_fake.calls[-1].response["tunnel"]["timeoutConfig"].clear()
            got = outcome(lambda: fast.describe_tunnel(tunnelId=tunnel_ids[0]))
            want = outcome(lambda: full.describe_tunnel(tunnelId=tunnel_ids[1]))
    assert exact(got) == exact(want)
    assert got[0]["tunnel"]["status"] == "OPEN"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"n": 1}, {"n": True}),
        ({"n": 1}, {"n": 1.0}),
        ({"n": 0.0}, {"n": -0.0}),
        ({"n": 0.1 + 0.2}, {"n": 0.3}),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
        ({"l": [1, 2]}, {"l": [1, 2, 3]}),
        ({"l": [1, 2]}, {"l": (1, 2)}),
        ({"l": [[1], [2]]}, {"l": [[1, 2]]}),
        ({"s": "x"}, {"s": "y"}),
        ({"s": "\u00e9"}, {"s": "e\u0301"}),
        ({"n": None}, {"n": "None"}),
        ({"n": None}, {}),
    ],
)
def test_a_repeated_encoding_needs_identical_json(a: Any, b: Any) -> None:
    assert _answer_key(a) != _answer_key(b)


def test_identical_json_is_recognised() -> None:
    shared = ["x"]
    value = {"t": {"a": [1, 2.5, "x", None, True], "b": {"c": -0.0}, "d": shared, "e": shared}}
    twin = {"t": {"a": [1, 2.5, "x", None, True], "b": {"c": -0.0}, "d": ["x"], "e": ["x"]}}
    assert _answer_key(value) == _answer_key(twin)
    assert json.dumps(value) == json.dumps(twin)


class _Text(str):
    pass


def test_values_that_are_not_plain_json_are_never_compared() -> None:
    assert _answer_key({"s": _Text("x")}) is None


def test_invocation_ids_are_version_4_uuids() -> None:
    ids = {_uuid4() for _ in range(1000)}  # several refills of the random pool
    assert len(ids) == 1000
    for text in ids:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_draws_invocation_ids_of_its_own() -> None:
    _uuid4()  # the pool now holds unused numbers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.write(write, _uuid4().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read().decode()
    assert child != _uuid4()


def retries_seen(client: Any) -> list[dict[str, Any]]:
    """The request context's ``retries`` after each call, as ``after-call`` sees it."""
    seen: list[dict[str, Any]] = []

    def note(context: dict[str, Any], **_: Any) -> None:
        seen.append({k: v for k, v in context["retries"].items() if k != "invocation-id"})

    client.meta.events.register("after-call.iotsecuretunneling", note)
    return seen


def test_skipped_retry_event_leaves_the_context_as_the_handler_would() -> None:
    fast, full = make_client(), make_client()
    with attach(fast), attach(full, http=True):
        fast_seen, full_seen = retries_seen(fast), retries_seen(full)
        for client in (fast, full):
            client.open_tunnel()
            client.list_tunnels()
    assert fast_seen == full_seen == [{"attempt": 1, "max": 5}] * 2


def test_a_needs_retry_handler_of_the_user_hears_every_answer() -> None:
    client = make_client()
    heard: list[int] = []
    client.meta.events.register(
        "needs-retry.iotsecuretunneling",
        lambda response, **_: heard.append(response[0].status_code),
    )
    with attach(client):
        client.open_tunnel()
        client.list_tunnels()
        client.list_tunnels()
        with pytest.raises(ClientError):
            client.describe_tunnel(tunnelId="missing")
    assert heard == [200, 200, 200, 400]


def test_standard_mode_still_returns_retry_quota_on_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    released: list[int] = []
    original = quota.RetryQuota.release

    def release(self: quota.RetryQuota, capacity_amount: int) -> int:
        released.append(capacity_amount)
        return original(self, capacity_amount)

    monkeypatch.setattr(quota.RetryQuota, "release", release)
    client = make_client(retries={"mode": "standard"})
    with attach(client):
        client.list_tunnels()
        client.list_tunnels()
    assert released == [1, 1]
