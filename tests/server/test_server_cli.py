"""``python -m pytest_securetunnel serve`` in a subprocess, and the AWS CLI against a server.

No sleeps: the tests wait for the printed ready line and for process exit, with timeouts.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from helpers_server import ACCESS_KEY, SECRET_KEY, Lines, cli_environment

from pytest_securetunnel.server import SecureTunnelServer, main, server_main

AWS = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")


class Served:
    """A running ``serve`` subprocess and what it printed when ready."""

    def __init__(self, args: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest_securetunnel", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_environment(),
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.out = Lines(self.process.stdout)
        self.err = Lines(self.process.stderr)

    def ready(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads(self.out.next_matching('"event": "ready"'))
        return info

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        self.out.finish()
        self.err.finish()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_its_endpoints_logs_calls_and_stops_on_a_signal(
    signum: signal.Signals,
) -> None:
    served = Served(["--no-tls", "--seed", "7", "--access-key", f"{ACCESS_KEY}:{SECRET_KEY}"])
    try:
        info = served.ready()
        assert info["endpoint_url"].startswith("http://127.0.0.1:")
        assert info["data_endpoint"].startswith("ws://127.0.0.1:")
        assert info["data_tls_endpoint"] is None
        assert (info["seed"], info["signed_requests_only"]) == (7, True)
        assert f"securetunnel-server control plane: {info['endpoint_url']}" in served.out.seen
        assert f"securetunnel-server data plane: {info['data_endpoint']}" in served.out.seen
        api = boto3.client(
            "iotsecuretunneling",
            region_name="us-east-1",
            endpoint_url=info["endpoint_url"],
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        api.open_tunnel()
        assert served.err.next_matching("OpenTunnel").startswith("OpenTunnel 200 - ")
        served.process.send_signal(signum)
        assert served.process.wait(timeout=30) == 0
        stopped = json.loads(served.out.next_matching('"event": "stopped"'))
        assert stopped == {"event": "stopped", "signal": signum.name}
    finally:
        served.close()


def test_serve_options_reach_the_server() -> None:
    served = Served(["--no-data-plane", "--deny", "CloseTunnel", "--region", "eu-west-1"])
    try:
        info = served.ready()
        assert info["data_endpoint"] is None
        assert (info["deny"], info["region"]) == (["CloseTunnel"], "eu-west-1")
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=30) == 0
    finally:
        served.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--access-key", "nokey"], "access key 'nokey' must be AKID:SECRET"),
        (["--port", "99999"], "port 99999 must be between 0 and 65535"),
        (["--deny", "Teleport"], "deny entry 'Teleport' is not an operation"),
    ],
)
def test_bad_options_exit_with_a_message_naming_the_value(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code: int | str | None
    try:
        code = main(["serve", *args])
    except SystemExit as exit:
        code = exit.code  # argparse's own errors
    assert code == 2
    assert needle in capsys.readouterr().err


def test_a_busy_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert server_main(["--port", str(port), "--no-data-plane"]) == 1
    assert f"securetunnel-server: error: [Errno 98] cannot listen on 127.0.0.1:{port}" in (
        capsys.readouterr().err
    )


def test_the_console_script_has_the_same_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        server_main(["--help"])
    assert done.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--host", "--port", "--data-port", "--seed", "--access-key", "--no-tls"):
        assert option in help_text


@pytest.mark.slow
@pytest.mark.skipif(AWS is None, reason="the AWS CLI is not installed")
def test_the_aws_cli_works_against_the_server_unchanged() -> None:
    def aws(*args: str) -> subprocess.CompletedProcess[str]:
        assert AWS is not None
        return subprocess.run(
            [AWS, "iotsecuretunneling", *args, "--endpoint-url", url, "--region", "eu-west-1"],
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_environment(),
        )

    def ok(*args: str) -> Any:
        done = aws(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    with SecureTunnelServer(
        data_plane=False, access_keys=[f"{ACCESS_KEY}:{SECRET_KEY}:111122223333"]
    ) as server:
        url = server.endpoint_url
        opened = ok(
            "open-tunnel",
            "--destination-config",
            "thingName=robot,services=SSH",
            "--tags",
            "key=team,value=blue",
            "--timeout-config",
            "maxLifetimeTimeoutMinutes=30",
        )
        tunnel_id, arn = opened["tunnelId"], opened["tunnelArn"]
        assert arn.startswith("arn:aws:iot:eu-west-1:111122223333:tunnel/")
        rotate = ("rotate-tunnel-access-token", "--tunnel-id", tunnel_id, "--client-mode")
        with ThreadPoolExecutor(5) as pool:
            described, listed, rotated, tagged, missing = pool.map(
                lambda args: aws(*args),
                [
                    ("describe-tunnel", "--tunnel-id", tunnel_id),
                    ("list-tunnels", "--thing-name", "robot"),
                    (*rotate, "DESTINATION"),
                    ("tag-resource", "--resource-arn", arn, "--tags", "key=env,value=test"),
                    ("describe-tunnel", "--tunnel-id", "no-such-tunnel"),
                ],
            )
            tunnel = json.loads(described.stdout)["tunnel"]
            assert (tunnel["status"], tunnel["destinationConfig"]["services"]) == (
                "OPEN",
                ["SSH"],
            )
            assert tunnel["timeoutConfig"] == {"maxLifetimeTimeoutMinutes": 30}
            summaries = json.loads(listed.stdout)["tunnelSummaries"]
            assert [s["tunnelId"] for s in summaries] == [tunnel_id]
            assert set(json.loads(rotated.stdout)) == {"tunnelArn", "destinationAccessToken"}
            assert tagged.returncode == 0, tagged.stderr
            assert missing.returncode == 255
            assert missing.stderr.strip() == (
                "An error occurred (ResourceNotFoundException) when calling the DescribeTunnel "
                "operation: Tunnel no-such-tunnel not found"
            )
            tags_listed, closed = pool.map(
                lambda args: aws(*args),
                [
                    ("list-tags-for-resource", "--resource-arn", arn),
                    ("close-tunnel", "--tunnel-id", tunnel_id),
                ],
            )
        tags = json.loads(tags_listed.stdout)["tags"]
        assert sorted((t["key"], t["value"]) for t in tags) == [("env", "test"), ("team", "blue")]
        assert closed.returncode == 0, closed.stderr
        assert server.fake.status(server.fake.tunnel(tunnel_id)) == "CLOSED"
        assert {r.access_key for r in server.requests} == {ACCESS_KEY}
