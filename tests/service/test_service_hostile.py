"""Hostile values and long runs: the clock refuses bad times, state stays bounded."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest

from pytest_securetunnel.service import Clock, SecureTunnelFake, ServiceError
from pytest_securetunnel.service._clock import MAX_TIME


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"hours": math.nan}, "advance(hours=...) must be a finite number; got nan"),
        ({"minutes": math.inf}, "advance(minutes=...) must be a finite number; got inf"),
        ({"seconds": -math.inf}, "advance(seconds=...) must be a finite number; got -inf"),
        ({"hours": 1e308}, "advance() by inf seconds would make the clock read inf epoch"),
        ({"seconds": 10**400}, "advance(seconds=...) must be a finite number"),
        ({"seconds": "5"}, "advance(seconds=...) must be a number; got '5'"),
        ({"hours": 1, "seconds": 1e300}, "must stay between 0 (1970-01-01T00:00:00Z) and"),
    ],
)
def test_advance_refuses_non_finite_and_out_of_range_values(
    kwargs: dict[str, object], needle: str
) -> None:
    clock = Clock()
    clock.set(1_700_000_000)
    with pytest.raises(ValueError) as info:
        clock.advance(**kwargs)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert 1_700_000_000 <= clock.time() < 1_700_000_100  # unchanged


@pytest.mark.parametrize(
    ("when", "needle"),
    [
        (math.nan, "set(when) must be a finite number; got nan"),
        (math.inf, "set(when) must be a finite number; got inf"),
        (-1.0, "Clock: set(-1.0) would make the clock read -1.0 epoch seconds; it must stay"),
        (MAX_TIME + 1, "and 253370764800 (9999-01-01T00:00:00Z)"),
        (dt.datetime(9999, 6, 1, tzinfo=dt.timezone.utc), "set(datetime.datetime(9999, 6, 1"),
    ],
)
def test_set_refuses_non_finite_and_out_of_range_times(when: object, needle: str) -> None:
    clock = Clock()
    clock.set(1_700_000_000)
    with pytest.raises(ValueError) as info:
        clock.set(when)  # type: ignore[arg-type]
    assert needle in str(info.value)
    assert 1_700_000_000 <= clock.time() < 1_700_000_100


def test_the_clock_still_works_at_its_bounds() -> None:
    fake = SecureTunnelFake(seed=1)
    fake.clock.set(MAX_TIME - 3900)
    opened = fake.call("OpenTunnel", {})
    fake.clock.advance(hours=1)
    assert fake.status(fake.tunnel(opened["tunnelId"])) == "OPEN"
    with pytest.raises(ValueError, match="must stay between"):
        fake.clock.advance(seconds=600)
    fake.clock.set(0)
    assert fake.clock.time() < 100


@pytest.mark.parametrize("depth", [33, 1_000, 100_000])
def test_deeply_nested_json_is_a_serialization_error(depth: int) -> None:
    fake = SecureTunnelFake(seed=1)
    body = ('{"description": "x", "extra": %s}' % ("[" * depth + "]" * depth)).encode()
    answer = fake.handle("OpenTunnel", body)
    assert answer.status == 400
    assert json.loads(answer.body) == {
        "__type": "SerializationException",
        "message": "Request body is nested more than 32 levels deep",
    }
    assert fake.calls == [] and list(fake) == []


# -- bounded state in a long run ---------------------------------------------------------


def test_the_call_log_keeps_the_latest_calls_and_counts_the_rest() -> None:
    from pytest_securetunnel.report import format_calls

    fake = SecureTunnelFake(seed=1, max_calls=5)
    for number in range(8):
        fake.call("ListTunnels", {"maxResults": number + 1})
    assert len(fake.calls) == 5 and fake.calls.dropped == 3
    assert [c.params["maxResults"] for c in fake.calls] == [4, 5, 6, 7, 8]
    assert repr(fake).startswith("<SecureTunnelFake tunnels=0 calls=5 (+3 dropped) seed=1")
    report = format_calls(fake, limit=2).splitlines()
    assert report[1] == "... 6 earlier calls not shown (3 of them dropped from the call log)"
    assert report[2].startswith("  7. ListTunnels(")
    fake.reset()
    assert (fake.calls, fake.calls.dropped) == ([], 0)
    with pytest.raises(ValueError, match="max_calls must be a positive integer; got 0"):
        SecureTunnelFake(max_calls=0)


def test_the_validation_cache_holds_no_request_bodies() -> None:
    fake = SecureTunnelFake(seed=1)
    for number in range(50):
        body = json.dumps({"description": f"{number:04d}" + "x" * 2000}).encode()
        assert fake.handle("OpenTunnel", body).status == 200
    keys = list(fake._valid_bodies)
    assert len(keys) == 50
    assert {len(digest) for _, digest in keys} == {16}


def test_tokens_are_dropped_once_the_tunnels_retention_ends() -> None:
    fake = SecureTunnelFake(seed=1)
    opened = fake.call("OpenTunnel", {})
    deleted = fake.call("OpenTunnel", {})
    for _ in range(20):
        fake.call("RotateTunnelAccessToken", {"tunnelId": opened["tunnelId"], "clientMode": "ALL"})
    assert len(fake._tokens) == 44
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    fake.call("CloseTunnel", {"tunnelId": deleted["tunnelId"], "delete": True})
    fake.clock.advance(hours=2)
    # Until retention ends, old tokens still get their precise refusal.
    assert fake.token(opened["sourceAccessToken"]) is not None
    assert fake.token(deleted["sourceAccessToken"]) is not None
    fake.clock.advance(hours=1, seconds=1)
    assert fake._tokens == {} and fake._tunnel_tokens == {}
    assert list(fake) == []


def test_checking_deadlines_costs_nothing_per_idle_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pytest_securetunnel.service._state import Backend

    fake = SecureTunnelFake(seed=1)
    for number in range(20_000):
        fake.backend(account_id=f"{number:012d}")
    short = fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 1}})
    refreshed: list[Backend] = []
    original = Backend.refresh

    def counting(self: Backend, now: float, retention: float) -> Any:
        refreshed.append(self)
        return original(self, now, retention)

    monkeypatch.setattr(Backend, "refresh", counting)
    for _ in range(100):
        fake.check_deadlines()
    assert refreshed == []  # nothing is due: no backend is visited
    fake.clock.advance(minutes=2)  # the one deadline passes: only its backend is visited
    assert [b.account_id for b in refreshed] == [fake.default_account_id]
    assert fake.status(fake.tunnel(short["tunnelId"])) == "CLOSED"


def test_retention_changes_apply_to_scheduled_deadlines() -> None:
    fake = SecureTunnelFake(seed=1)
    opened = fake.call("OpenTunnel", {})
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    fake.closed_retention_seconds = 60.0
    fake.clock.advance(seconds=61)
    assert list(fake) == []


def test_list_page_tokens_are_bounded() -> None:
    from pytest_securetunnel.service._operations import MAX_LIST_SNAPSHOTS

    fake = SecureTunnelFake(seed=1)
    fake.call("OpenTunnel", {})
    fake.call("OpenTunnel", {})
    tokens = [
        fake.call("ListTunnels", {"maxResults": 1})["nextToken"]
        for _ in range(MAX_LIST_SNAPSHOTS + 5)
    ]
    assert len(fake.backend().snapshots) == MAX_LIST_SNAPSHOTS
    assert (
        len(fake.call("ListTunnels", {"maxResults": 1, "nextToken": tokens[-1]})["tunnelSummaries"])
        == 1
    )
    with pytest.raises(ServiceError, match="it was not issued by ListTunnels"):
        fake.call("ListTunnels", {"maxResults": 1, "nextToken": tokens[0]})
