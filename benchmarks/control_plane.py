"""Per-call cost of the control-plane fake against its floors, measured side by side.

Floors, in one run on one client configuration:

* botocore ``Stubber`` (no HTTP, no state): the speed floor;
* moto's ``mock_aws`` on Secrets Manager (JSON 1.1, stateful; moto has no
  iotsecuretunneling): ``describe_secret`` and ``create_secret`` stand in for
  ``describe_tunnel`` and ``open_tunnel``.

Targets (issue 2): the fake within 1.3x of the Stubber floor, at least 5x faster
than moto. Also reports entering and leaving ``mock_securetunneling()`` and the
fuller ``http=True`` mode (signing, retries, parser).

Prints one line of JSON. Run: ``python benchmarks/control_plane.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.stub import Stubber

from pytest_securetunnel import mock_securetunneling

REGION = "us-east-1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def per_call_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Median over ``rounds`` of the mean time of ``calls`` calls, in microseconds."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


def stubber_floor(calls: int, rounds: int) -> dict[str, float]:
    c = client("iotsecuretunneling")
    now = time.time()
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(now, timezone.utc)
    tunnel_id = "b2de92a3-b8ff-46c0-b0f2-afa28b00cecd"
    tunnel = {
        "tunnelId": tunnel_id,
        "tunnelArn": f"arn:aws:iot:us-east-1:123456789012:tunnel/{tunnel_id}",
        "status": "OPEN",
        "sourceConnectionState": {"status": "DISCONNECTED", "lastUpdatedAt": when},
        "destinationConnectionState": {"status": "DISCONNECTED", "lastUpdatedAt": when},
        "destinationConfig": {"thingName": "thing-1", "services": ["SSH"]},
        "timeoutConfig": {"maxLifetimeTimeoutMinutes": 720},
        "tags": [{"key": "team", "value": "fleet"}],
        "createdAt": when,
        "lastUpdatedAt": when,
    }
    opened = {
        "tunnelId": tunnel["tunnelId"],
        "tunnelArn": tunnel["tunnelArn"],
        "sourceAccessToken": "s" * 600,
        "destinationAccessToken": "d" * 600,
    }
    stub = Stubber(c)
    total = calls * (rounds + 1)
    for _ in range(total):
        stub.add_response("describe_tunnel", {"tunnel": tunnel})
    for _ in range(total):
        stub.add_response("open_tunnel", opened)
    config = {"thingName": "thing-1", "services": ["SSH"]}
    with stub:
        per_call_us(lambda: c.describe_tunnel(tunnelId=tunnel["tunnelId"]), calls, 1)
        describe = per_call_us(
            lambda: c.describe_tunnel(tunnelId=tunnel["tunnelId"]), calls, rounds
        )
        per_call_us(lambda: c.open_tunnel(destinationConfig=config), calls, 1)
        open_ = per_call_us(lambda: c.open_tunnel(destinationConfig=config), calls, rounds)
    return {"describe_tunnel": describe, "open_tunnel": open_}


def fake(calls: int, rounds: int, http: bool) -> dict[str, float]:
    c = client("iotsecuretunneling")
    config = {"thingName": "thing-1", "services": ["SSH"]}
    with mock_securetunneling(http=http) as f:
        f.quotas.open_tunnels = 10**9
        tunnel_id = c.open_tunnel(destinationConfig=config, tags=[{"key": "team", "value": "x"}])[
            "tunnelId"
        ]
        per_call_us(lambda: c.describe_tunnel(tunnelId=tunnel_id), calls, 1)
        describe = per_call_us(lambda: c.describe_tunnel(tunnelId=tunnel_id), calls, rounds)
        open_ = per_call_us(lambda: c.open_tunnel(destinationConfig=config), calls, rounds)
    return {"describe_tunnel": describe, "open_tunnel": open_}


def moto_floor(calls: int, rounds: int) -> dict[str, float]:
    from moto import mock_aws

    with mock_aws():
        c = client("secretsmanager")
        arn = c.create_secret(Name="bench", SecretString="x")["ARN"]
        per_call_us(lambda: c.describe_secret(SecretId=arn), calls, 1)
        describe = per_call_us(lambda: c.describe_secret(SecretId=arn), calls, rounds)
        counter = iter(range(10**9))
        open_ = per_call_us(
            lambda: c.create_secret(Name=f"s{next(counter)}", SecretString="x"), calls, rounds
        )
    return {"describe_tunnel": describe, "open_tunnel": open_}


def enter_exit_us(rounds: int) -> float:
    def once() -> None:
        with mock_securetunneling():
            pass

    return per_call_us(once, 200, rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    calls, rounds = args.calls, args.rounds
    stub = stubber_floor(calls, rounds)
    ours = fake(calls, rounds, http=False)
    full = fake(calls // 5, rounds, http=True)
    moto = moto_floor(calls // 5, rounds)
    result: dict[str, Any] = {"benchmark": "control_plane", "unit": "us_per_call"}
    for op in ("describe_tunnel", "open_tunnel"):
        result[op] = {
            "fake": round(ours[op], 1),
            "stubber": round(stub[op], 1),
            "moto": round(moto[op], 1),
            "fake_http": round(full[op], 1),
            "fake_over_stubber": round(ours[op] / stub[op], 2),
            "moto_over_fake": round(moto[op] / ours[op], 2),
            "fake_http_over_stubber": round(full[op] / stub[op], 2),
        }
    result["enter_exit_us"] = round(enter_exit_us(rounds), 1)
    result["targets"] = {"fake_over_stubber": "<= 1.3", "moto_over_fake": ">= 5"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
