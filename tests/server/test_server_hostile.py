"""Server mode under hostile input: bad values, bad HTTP, floods; bounded answers."""

from __future__ import annotations

import json

import pytest
from helpers_server import call, request

from pytest_securetunnel.server import SecureTunnelServer


@pytest.mark.parametrize(
    ("route", "body", "needle"),
    [
        ("clock/advance", b'{"hours": NaN}', "advance(hours=...) must be a finite number; got nan"),
        ("clock/advance", b'{"minutes": Infinity}', "must be a finite number; got inf"),
        ("clock/advance", b'{"hours": 1e308}', "would make the clock read inf epoch seconds"),
        ("clock/set", b'{"time": NaN}', "set(when) must be a finite number; got nan"),
        ("clock/set", b'{"time": 1e308}', "it must stay between 0 (1970-01-01T00:00:00Z)"),
        ("clock/set", b'{"time": "9999-12-31T00:00:00Z"}', "it must stay between"),
        ("clock/advance", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bad_clock_values_are_a_400_and_change_nothing(
    server: SecureTunnelServer, route: str, body: bytes, needle: str
) -> None:
    opened = call(server.endpoint_url, "OpenTunnel", {})[2]
    before = server.fake.clock.time()
    status, _, raw = request(server.endpoint_url, "POST", f"/_securetunnel/{route}", body)
    answer = json.loads(raw)
    assert status == 400, answer
    assert answer["error"] in ("InvalidArgument", "InvalidJson")
    assert needle in answer["message"]
    assert 0 <= server.fake.clock.time() - before < 60
    status, _, described = call(
        server.endpoint_url, "DescribeTunnel", {"tunnelId": opened["tunnelId"]}
    )
    assert (status, described["tunnel"]["status"]) == (200, "OPEN")
    assert server.errors == []


def test_deeply_nested_json_is_a_400_not_a_server_bug(server: SecureTunnelServer) -> None:
    body = b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    status, headers, answer = call(server.endpoint_url, "OpenTunnel", body)
    assert (status, headers["x-amzn-errortype"]) == (400, "SerializationException")
    assert answer["message"] == "Request body is nested more than 32 levels deep"
    server.stop()  # raises if anything was recorded as a bug
    assert server.errors == []
