"""Per-call cost of the control-plane fake against its floors, measured side by side.

Floors, in one run on one client configuration:

* botocore ``Stubber`` (no HTTP, no state): the speed floor;
* moto's ``mock_aws`` on Secrets Manager (JSON 1.1, stateful; moto has no
  iotsecuretunneling): ``describe_secret`` and ``create_secret`` stand in for
  ``describe_tunnel`` and ``open_tunnel``.

Contenders: the fake attached to one client (``attach``), the process-wide mode
(``mock_securetunneling()``) with the real-call guard on as the pytest plugin has it,
and the fuller ``http=True`` mode (signing, retries, parser). Targets: ``describe_tunnel``
within 1.3x of the Stubber floor, ``open_tunnel`` within 1.5x, at least 5x faster than
moto. Also reports what the real-call guard adds to a Stubber call, and entering and
leaving ``mock_securetunneling()``.

Rounds of each contender are interleaved, and each ratio is the median over rounds of
the contender's time over the Stubber's time in the same round, so that machine drift
hits both sides alike. Times are the process's CPU time (``time.process_time``), which
other processes on a shared machine disturb less than wall time. Prints one line of
JSON. Run: ``python benchmarks/control_plane.py [--calls N] [--rounds N]``.
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

from pytest_securetunnel import SecureTunnelFake, attach, guard_real_calls, mock_securetunneling

REGION = "us-east-1"
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    """Mean CPU time of ``calls`` calls of ``fn``, in microseconds."""
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


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

    def begin(self) -> None:
        """Before each round."""

    def end(self) -> None:
        """After each round."""

    def close(self) -> None:
        pass


class StubberFloor(Contender):
    """botocore's Stubber: queued, pre-parsed answers; no HTTP, no state."""

    def __init__(self, calls: int, rounds: int, name: str = "stubber") -> None:
        super().__init__(name)
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


class ProcessWide(Contender):
    """``mock_securetunneling()`` with the real-call guard on, as under the pytest plugin.

    Active only during its own rounds: while active it answers every client.
    """

    def __init__(self) -> None:
        super().__init__("fake_process_wide")
        self.client = client("iotsecuretunneling")
        self.fake = SecureTunnelFake()
        self.fake.quotas.open_tunnels = 10**9
        self.begin()
        self.tunnel_id = self.client.open_tunnel(
            destinationConfig=CONFIG, tags=[{"key": "k", "value": "v"}]
        )["tunnelId"]
        self.end()

    def begin(self) -> None:
        self.unguard = guard_real_calls()
        self.mock = mock_securetunneling(self.fake)
        self.mock.start()

    def end(self) -> None:
        self.mock.stop()
        self.unguard()

    def describe(self) -> object:
        return self.client.describe_tunnel(tunnelId=self.tunnel_id)

    def open(self) -> object:
        return self.client.open_tunnel(destinationConfig=CONFIG)


class GuardedStubber(StubberFloor):
    """The Stubber with the real-call guard on: what the guard adds to any call."""

    def __init__(self, calls: int, rounds: int) -> None:
        super().__init__(calls, rounds, "stubber_guarded")

    def begin(self) -> None:
        self.unguard = guard_real_calls()

    def end(self) -> None:
        self.unguard()


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


def measure(
    contenders: list[Contender], calls: int, rounds: int
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Median per-call time of each contender, and median of its per-round ratio to the
    Stubber's time in the same round; rounds interleaved to share machine drift."""
    ops = ("describe_tunnel", "open_tunnel")
    samples: dict[str, dict[str, list[float]]] = {
        c.name: {op: [] for op in ops} for c in contenders
    }
    ratios: dict[str, dict[str, list[float]]] = {c.name: {op: [] for op in ops} for c in contenders}
    for round_ in range(rounds + 1):
        times: dict[str, tuple[float, float]] = {}
        for contender in contenders:
            n = (
                calls
                if contender.name != "moto" and "http" not in contender.name
                else max(calls // 5, 20)
            )
            contender.begin()
            try:
                times[contender.name] = (
                    per_call_us(contender.describe, n),
                    per_call_us(contender.open, n),
                )
            finally:
                contender.end()
        if not round_:  # the first round warms up
            continue
        for name, pair in times.items():
            for op, value, floor in zip(ops, pair, times["stubber"], strict=True):
                samples[name][op].append(value)
                ratios[name][op].append(value / floor)
    median = statistics.median
    return (
        {name: {op: median(v) for op, v in per.items()} for name, per in samples.items()},
        {name: {op: median(v) for op, v in per.items()} for name, per in ratios.items()},
    )


def enter_exit_us(rounds: int) -> float:
    def once() -> None:
        with mock_securetunneling():
            pass

    return statistics.median(per_call_us(once, 200) for _ in range(rounds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per round")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds")
    args = parser.parse_args(argv)
    calls, rounds = args.calls, args.rounds
    contenders: list[Contender] = [
        StubberFloor(calls, rounds + 1),
        Fake(http=False),
        ProcessWide(),
        GuardedStubber(calls, rounds + 1),
        Fake(http=True),
        Moto(),
    ]
    try:
        times, ratios = measure(contenders, calls, rounds)
    finally:
        for contender in contenders:
            contender.close()
    result: dict[str, Any] = {"benchmark": "control_plane", "unit": "cpu_us_per_call"}
    for op in ("describe_tunnel", "open_tunnel"):
        result[op] = {
            "fake": round(times["fake"][op], 1),
            "fake_process_wide": round(times["fake_process_wide"][op], 1),
            "stubber": round(times["stubber"][op], 1),
            "moto": round(times["moto"][op], 1),
            "fake_http": round(times["fake_http"][op], 1),
            "fake_over_stubber": round(ratios["fake"][op], 2),
            "fake_process_wide_over_stubber": round(ratios["fake_process_wide"][op], 2),
            "guarded_stubber_over_stubber": round(ratios["stubber_guarded"][op], 3),
            "moto_over_fake": round(ratios["moto"][op] / ratios["fake"][op], 2),
            "fake_http_over_stubber": round(ratios["fake_http"][op], 2),
        }
    result["enter_exit_us"] = round(enter_exit_us(rounds), 1)
    result["targets"] = {
        "describe_tunnel.fake_over_stubber": "<= 1.3",
        "open_tunnel.fake_over_stubber": "<= 1.5",
        "moto_over_fake": ">= 5",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
