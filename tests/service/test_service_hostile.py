"""Hostile values and long runs: the clock refuses bad times, state stays bounded."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from pytest_securetunnel.service import Clock, SecureTunnelFake
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
