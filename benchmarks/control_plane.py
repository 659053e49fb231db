"""Per-call cost of the control-plane fake against its floors, measured side by side.

Floors, in one run on one client configuration:

* botocore ``Stubber`` (no HTTP, no state): the speed floor;
* moto's ``mock_aws`` on Secrets Manager (JSON 1.1, stateful; moto has no
  iotsecuretunneling): ``describe_secret`` and ``create_secret`` stand in for
  ``describe_tunnel`` and ``open_tunnel``.

Targets (issue 2): the fake within 1.3x of the Stubber floor, at least 5x faster
than moto. Also reports entering and leaving ``mock_securetunneling()`` and the
fuller ``http=True`` mode (signing, retries, parser).

Rounds of each contender are interleaved so that machine drift hits all of them
alike; each figure is the median over rounds. Prints one line of JSON.
Run: ``python benchmarks/control_plane.py [--calls N] [--rounds N]``.
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

from pytest_securetunnel import SecureTunnelFake, attach, mock_securetunneling

REGION = "us-east-1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Mean time of ``calls`` calls of ``fn``, in microseconds."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)


CONFIG = {"thingName": "thing-1", "services": ["SSH"]}


class Contender:
    """One way of answering ``describe_tunnel`` and ``open_tunnel``, set up once."""

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> object:
        raise NotImplementedError

    def open(self) -> object:
        raise NotImplementedError

    def close(self) -> None:
        pass


class StubberFloor(Contender):
    """botocore's Stubber: queued, pre-parsed answers; no HTTP, no state."""

    def __init__(self, calls: int, rounds: int) -> None:
        super().__init__("stubber")
        self.client = client("iotsecuretunneling")
        with mock_securetunneling() as fake:
            opened = self.client.open_tunnel(
                destinationConfig=CONFIG, tags=[{"key": "k", "value": "v"}]
            )
            described = self.client.describe_tunnel(tunnelId=opened["tunnelId"])
        del fake
        described.pop("ResponseMetadata")
        opened.pop("ResponseMetadata")
        self.tunnel_id = opened["tunnelId"]
        self.stub = Stubber(self.client)
        for _ in range(rounds):  # the order measure() calls them in
            for _ in range(calls):
                self.stub.add_response("describe_tunnel", described)
            for _ in range(calls):
                self.stub.add_response("open_tunnel", opened)
        self.stub.activate()

    def describe(self) -> object:
        return self.client.describe_tunnel(tunnelId=self.tunnel_id)

    def open(self) -> object:
        return self.client.open_tunnel(destinationConfig=CONFIG)

    def close(self) -> None:
        self.stub.deactivate()


class Fake(Contender):
    """The stateful fake behind ``attach`` (the same hook as the process-wide mode)."""

    def __init__(self, http: bool) -> None:
        super().__init__("fake_http" if http else "fake")
        self.client = client("iotsecuretunneling")
        self.fake = SecureTunnelFake()
        self.fake.quotas.open_tunnels = 10**9
        self.attachment = attach(self.client, self.fake, http=http)
        self.tunnel_id = self.client.open_tunnel(
            destinationConfig=CONFIG, tags=[{"key": "k", "value": "v"}]
        )["tunnelId"]

    def describe(self) -> object:
        return self.client.describe_tunnel(tunnelId=self.tunnel_id)

    def open(self) -> object:
        return self.client.open_tunnel(destinationConfig=CONFIG)

    def close(self) -> None:
        self.attachment.detach()


class Moto(Contender):
    """moto's mock_aws on Secrets Manager (JSON 1.1, stateful)."""

    def __init__(self) -> None:
        super().__init__("moto")
        from moto import mock_aws

        self.mock = mock_aws()
        self.mock.start()
        self.client = client("secretsmanager")
        self.arn = self.client.create_secret(Name="bench", SecretString="x")["ARN"]
        self.counter = iter(range(10**9))

    def describe(self) -> object:
        return self.client.describe_secret(SecretId=self.arn)

    def open(self) -> object:
        return self.client.create_secret(Name=f"s{next(self.counter)}", SecretString="x")

    def close(self) -> None:
        self.mock.stop()


def measure(contenders: list[Contender], calls: int, rounds: int) -> dict[str, dict[str, float]]:
    """Median per-call time of each contender, rounds interleaved to share machine drift."""
    samples: dict[str, dict[str, list[float]]] = {
        c.name: {"describe_tunnel": [], "open_tunnel": []} for c in contenders
    }
    for round_ in range(rounds + 1):
        for contender in contenders:
            n = calls if contender.name in ("stubber", "fake") else max(calls // 5, 20)
            describe = per_call_us(contender.describe, n)
            open_ = per_call_us(contender.open, n)
            if round_:  # the first round warms up
                samples[contender.name]["describe_tunnel"].append(describe)
                samples[contender.name]["open_tunnel"].append(open_)
    return {
        name: {op: statistics.median(values) for op, values in ops.items()}
        for name, ops in samples.items()
    }


def enter_exit_us(rounds: int) -> float:
    def once() -> None:
        with mock_securetunneling():
            pass

    return statistics.median(per_call_us(once, 200) for _ in range(rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per round")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    args = parser.parse_args(argv)
    calls, rounds = args.calls, args.rounds
    contenders: list[Contender] = [
        StubberFloor(calls, rounds + 1),
        Fake(http=False),
        Fake(http=True),
        Moto(),
    ]
    try:
        times = measure(contenders, calls, rounds)
    finally:
        for contender in contenders:
            contender.close()
    stub, ours, full, moto = (times[n] for n in ("stubber", "fake", "fake_http", "moto"))
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
