"""The service's shortcuts give what the full path gives.

A repeated small request body skips decoding and validation, with the same outcome.

Each request of a corpus (valid ones of every operation, JSON nulls, model violations,
wrong types, hostile bodies) is sent several times to a fake with the shortcut and to
a twin with the same seed that decodes and validates every body afresh; their answers,
call records and state must be identical.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from typing import Any

import pytest
from freezegun import freeze_time

from pytest_securetunnel.service import SecureTunnelFake, _wire


def corpus(tunnel_id: str, arn: str) -> list[tuple[str, bytes]]:
    """Requests of every operation, good and bad, as (operation, body)."""

    def body(value: Any) -> bytes:
        return json.dumps(value).encode()

    config = {"thingName": "thing-1", "services": ["SSH"]}
    return [
        ("OpenTunnel", b""),
        ("OpenTunnel", body({})),
        ("OpenTunnel", body({"destinationConfig": config})),
        ("OpenTunnel", body({"destinationConfig": config, "description": None})),
        ("OpenTunnel", body({"tags": [{"key": "a", "value": "1"}], "description": "d"})),
        ("OpenTunnel", body({"timeoutConfig": {"maxLifetimeTimeoutMinutes": 721}})),
        ("OpenTunnel", body({"destinationConfig": {"services": ["A", "A"]}})),
        ("OpenTunnel", body({"tags": [{"key": "aws:x", "value": "1"}]})),
        ("OpenTunnel", body({"description": 5})),
        ("OpenTunnel", body({"description": "bad\u0007"})),
        ("DescribeTunnel", body({"tunnelId": tunnel_id})),
        ("DescribeTunnel", body({"tunnelId": "missing"})),
        ("DescribeTunnel", body({"tunnelId": None})),
        ("DescribeTunnel", body({"tunnelId": ""})),
        ("DescribeTunnel", body({"tunnelId": ["x"]})),
        ("DescribeTunnel", b"[]"),
        ("DescribeTunnel", b"{"),
        ("DescribeTunnel", b"[" * 40 + b"]" * 40),
        ("DescribeTunnel", body({"tunnelId": tunnel_id, "extra": {"a": [None, 1.5, True]}})),
        ("ListTunnels", body({})),
        ("ListTunnels", body({"maxResults": 1})),
        ("ListTunnels", body({"maxResults": 101})),
        ("ListTunnels", body({"thingName": "thing-1", "nextToken": None})),
        ("ListTunnels", body({"nextToken": "not-issued"})),
        ("TagResource", body({"resourceArn": arn, "tags": [{"key": "b", "value": "2"}]})),
        ("TagResource", body({"resourceArn": arn, "tags": None})),
        ("ListTagsForResource", body({"resourceArn": arn})),
        ("UntagResource", body({"resourceArn": arn, "tagKeys": ["b"]})),
        ("UntagResource", body({"resourceArn": arn, "tagKeys": ["aws:b"]})),
        ("RotateTunnelAccessToken", body({"tunnelId": tunnel_id, "clientMode": "ALL"})),
        ("RotateTunnelAccessToken", body({"tunnelId": tunnel_id, "clientMode": "BOTH"})),
        ("RotateTunnelAccessToken", body({"tunnelId": tunnel_id, "clientMode": "DESTINATION"})),
        ("NoSuchOperation", body({})),
        ("CloseTunnel", body({"tunnelId": tunnel_id})),
        ("CloseTunnel", body({"tunnelId": tunnel_id, "delete": True})),
        ("DescribeTunnel", body({"tunnelId": tunnel_id})),
    ]


def record(call: _wire.CallRecord) -> tuple[Any, ...]:
    return (
        call.operation,
        repr(call.params),
        call.account_id,
        call.region,
        call.status,
        repr(call.response),
        call.error_code,
        call.error_message,
        call.attempt,
        call.retry_delay,
    )


def run(fake: SecureTunnelFake) -> list[Any]:
    seen: list[Any] = []
    tunnel_id = json.loads(fake.handle("OpenTunnel", b"{}").body)["tunnelId"]
    arn = f"arn:aws:iot:us-east-1:123456789012:tunnel/{tunnel_id}"
    for _ in range(3):
        for operation, body in corpus(tunnel_id, arn):
            for _ in range(2):
                wire = fake.handle(operation, body, attempt=2, retry_delay=0.5)
                seen.append((operation, wire.status, wire.headers, wire.body))
        seen.append([repr(t.describe(fake.clock.time())) for t in fake])
    seen.append([record(call) for call in fake.calls])
    seen.append([(n.topic, n.payload) for n in fake.notifications])
    return seen


def test_repeated_bodies_give_what_fresh_decoding_and_validation_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with freeze_time("2024-05-01 12:00:00"):
        fast = SecureTunnelFake(seed=7)
        fast_seen = run(fast)
        assert fast._prepared  # the shortcut was taken
        monkeypatch.setattr(_wire, "MAX_PREPARED_BODY", -1)  # every body decoded afresh
        slow = SecureTunnelFake(seed=7)
        slow_seen = run(slow)
    assert not slow._prepared
    assert len(fast_seen) == len(slow_seen)
    for number, (got, want) in enumerate(zip(fast_seen, slow_seen, strict=True)):
        assert got == want, number


def test_a_repeated_body_is_decoded_and_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SecureTunnelFake(seed=1)
    decoded: list[bytes] = []
    validated: list[str] = []
    loads, validate = _wire.json.loads, _wire._model.validate
    monkeypatch.setattr(_wire.json, "loads", lambda body: decoded.append(body) or loads(body))
    monkeypatch.setattr(
        _wire._model, "validate", lambda op, params: validated.append(op) or validate(op, params)
    )
    body = b'{"maxResults": 5}'
    for _ in range(3):
        assert fake.handle("ListTunnels", body).status == 200
    assert (decoded, validated) == ([body], ["ListTunnels"])
    assert [c.params for c in fake.calls] == [{"maxResults": 5}] * 3


def test_each_record_of_a_repeated_body_has_params_of_its_own() -> None:
    fake = SecureTunnelFake(seed=1)
    body = json.dumps({"destinationConfig": {"services": ["SSH"]}, "description": None}).encode()
    fake.handle("OpenTunnel", body)
    fake.calls[0].params["destinationConfig"]["services"].append("mutated")
    fake.calls[0].params.clear()
    fake.handle("OpenTunnel", body)
    fake.handle("OpenTunnel", body)
    assert fake.calls[1].params == {"destinationConfig": {"services": ["SSH"]}, "description": None}
    assert fake.calls[1].params is not fake.calls[2].params
    assert (
        fake.calls[1].params["destinationConfig"] is not fake.calls[2].params["destinationConfig"]
    )
    assert [t.services for t in fake] == [["SSH"]] * 3


def test_a_large_body_is_not_kept() -> None:
    fake = SecureTunnelFake(seed=1)
    body = json.dumps({"description": "x" * _wire.MAX_PREPARED_BODY}).encode()
    for _ in range(2):
        assert fake.handle("OpenTunnel", body).status == 200
    assert fake._prepared == {} and len(fake._valid_bodies) == 1


def test_tunnel_ids_are_the_version_4_uuids_of_the_seeded_bits() -> None:
    fake = SecureTunnelFake(seed=11)
    twin = random.Random(11)
    for _ in range(200):
        assert fake._new_id() == str(uuid.UUID(int=twin.getrandbits(128), version=4))


def test_access_tokens_are_the_base64url_of_the_seeded_bits() -> None:
    fake = SecureTunnelFake(seed=12)
    twin = random.Random(12)
    backend = fake.backend()
    for _ in range(50):
        raw = twin.getrandbits(444 * 8).to_bytes(444, "big")
        want = "AQGAAXiA" + base64.urlsafe_b64encode(raw).decode()
        assert fake._new_token("t", backend, "source") == want
        assert len(want) == 600
