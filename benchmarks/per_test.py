"""What a test costs: a 300-test suite on the fake against the same suite on Stubber and moto.

Each test makes a client, opens a tunnel and describes it:

* ``fake``: the ``securetunnel_client`` fixture (the fake behind it);
* ``stubber``: a fixture that makes a boto3 client and a ``Stubber`` queued with the
  two answers (no state: the floor);
* ``moto``: ``mock_aws`` and a Secrets Manager client (moto has no iotsecuretunneling;
  ``create_secret`` and ``describe_secret`` stand in), when moto is installed.

Each suite runs with pytest in a subprocess with the same flags, next to an empty
300-test suite; a suite's per-test cost is its time minus the empty suite's, over 300,
so pytest's start-up and collection are subtracted. Times are the child processes'
CPU time (less disturbed than wall time on a shared machine); suites are run in
interleaved rounds after one untimed round, and each figure is the median over rounds.
Bytecode is cached (in a temporary directory) as in a user's runs, so the timed rounds
do not count compiling the package, boto3 or moto. Prints one line of JSON.
Run: ``python benchmarks/per_test.py [--tests N] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = """\
import boto3
import pytest

CONFIG = {{"thingName": "thing-1", "services": ["SSH"]}}
N = {tests}
"""

SUITES = {
    "empty": """
@pytest.mark.parametrize("i", range(N))
def test_nothing(i):
    pass
""",
    "fake": """
@pytest.mark.parametrize("i", range(N))
def test_open_and_describe(securetunnel_client, i):
    opened = securetunnel_client.open_tunnel(destinationConfig=CONFIG)
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "OPEN"
""",
    "stubber": """
import datetime
from botocore.stub import Stubber

TUNNEL_ID = "8d1f4e2a-6c0b-4b5e-9a51-3f1c2d7e9b10"
ARN = "arn:aws:iot:us-east-1:123456789012:tunnel/" + TUNNEL_ID
NOW = datetime.datetime(2024, 5, 1, tzinfo=datetime.timezone.utc)
OPENED = {{
    "tunnelId": TUNNEL_ID,
    "tunnelArn": ARN,
    "sourceAccessToken": "AQGAAXiA" + "s" * 592,
    "destinationAccessToken": "AQGAAXiA" + "d" * 592,
}}
DESCRIBED = {{
    "tunnel": {{
        "tunnelId": TUNNEL_ID,
        "tunnelArn": ARN,
        "status": "OPEN",
        "sourceConnectionState": {{"status": "DISCONNECTED", "lastUpdatedAt": NOW}},
        "destinationConnectionState": {{"status": "DISCONNECTED", "lastUpdatedAt": NOW}},
        "destinationConfig": CONFIG,
        "timeoutConfig": {{"maxLifetimeTimeoutMinutes": 720}},
        "createdAt": NOW,
        "lastUpdatedAt": NOW,
    }}
}}


@pytest.fixture
def stubbed():
    client = boto3.client(
        "iotsecuretunneling",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stubber:
        stubber.add_response("open_tunnel", OPENED, {{"destinationConfig": CONFIG}})
        stubber.add_response("describe_tunnel", DESCRIBED, {{"tunnelId": TUNNEL_ID}})
        yield client
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("i", range(N))
def test_open_and_describe(stubbed, i):
    opened = stubbed.open_tunnel(destinationConfig=CONFIG)
    tunnel = stubbed.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "OPEN"
""",
    "moto": """
from moto import mock_aws


@pytest.fixture
def secrets():
    with mock_aws():
        yield boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


@pytest.mark.parametrize("i", range(N))
def test_create_and_describe(secrets, i):
    created = secrets.create_secret(Name="s", SecretString="x")
    described = secrets.describe_secret(SecretId=created["ARN"])
    assert described["Name"] == "s"
""",
}

#: The suites' environment: bytecode cached outside the sources (set in ``main``).
_ENV: dict[str, str] = {}

PYTEST_FLAGS = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist"]


def write_suites(root: Path, tests: int, names: list[str]) -> None:
    for name in names:
        folder = root / name
        folder.mkdir()
        (folder / f"test_{name}.py").write_text((HEADER + SUITES[name]).format(tests=tests))


def run_suite(root: Path, name: str, tests: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one pytest run of suite ``name``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *PYTEST_FLAGS, str(root / name)],
        cwd=root,
        capture_output=True,
        text=True,
        env=_ENV,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or f"{tests} passed" not in done.stdout:
        raise SystemExit(f"suite {name} failed:\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=300, help="tests per suite")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    args = parser.parse_args(argv)
    names = ["empty", "fake", "stubber"]
    if importlib.util.find_spec("moto") is not None:
        names.append("moto")
    cpu: dict[str, list[float]] = {name: [] for name in names}
    wall: dict[str, list[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory(prefix="securetunnel-per-test-") as tmp:
        root = Path(tmp)
        write_suites(root, args.tests, names)
        _ENV.clear()
        _ENV.update(os.environ, PYTHONPYCACHEPREFIX=str(root / "pycache"))
        _ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        for name in names:  # untimed: fills the bytecode cache
            run_suite(root, name, args.tests)
        for _ in range(args.rounds):
            for name in names:
                used, took = run_suite(root, name, args.tests)
                cpu[name].append(used)
                wall[name].append(took)
    median = statistics.median
    per_test_ms = {
        name: (median(cpu[name]) - median(cpu["empty"])) / args.tests * 1000
        for name in names
        if name != "empty"
    }
    result: dict[str, object] = {
        "benchmark": "per_test",
        "tests": args.tests,
        "unit": "cpu_ms_per_test",
        "empty_suite_cpu_s": round(median(cpu["empty"]), 3),
        "per_test_ms": {name: round(value, 3) for name, value in per_test_ms.items()},
        "wall_s": {name: round(median(values), 3) for name, values in wall.items()},
        "fake_over_stubber": round(per_test_ms["fake"] / per_test_ms["stubber"], 2),
    }
    if "moto" in per_test_ms:
        result["moto_over_fake"] = round(per_test_ms["moto"] / per_test_ms["fake"], 2)
    result["targets"] = {"fake_over_stubber": "<= 1.1"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
