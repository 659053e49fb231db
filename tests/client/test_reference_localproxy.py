"""ReferenceLocalProxy and the securetunnel_localproxy fixture, with a stand-in binary.

The stand-in logs like the reference local proxy, so these run where the real binary
is absent (CI); tests/interop runs the real one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_localproxy import alive, write_fake_localproxy

from pytest_securetunnel import SecureTunnelFake, TunnelProxy
from pytest_securetunnel.client import (
    LocalProxyNotFound,
    ReferenceLocalProxy,
    ReferenceLocalProxyError,
    find_localproxy,
    reserve_port,
)

CA_DIR = "/ca/hashed"


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    return write_fake_localproxy(tmp_path)


@pytest.fixture
def no_threads_left() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    assert set(threading.enumerate()) <= before


def make(binary: Path, mode: Any, services: Any, **options: Any) -> ReferenceLocalProxy:
    options.setdefault("endpoint", "127.0.0.1:4443")
    options.setdefault("ca_dir", CA_DIR)
    return ReferenceLocalProxy("TOKEN", mode, services, binary=str(binary), **options)


# -- finding the binary ---------------------------------------------------------------------


def test_find_localproxy_env_var_names_a_missing_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing")
    with pytest.raises(LocalProxyNotFound) as raised:
        find_localproxy({"SECURETUNNEL_LOCALPROXY": missing})
    assert str(raised.value) == (
        f"reference localproxy binary not found: SECURETUNNEL_LOCALPROXY={missing!r} does not exist"
    )


def test_find_localproxy_env_var_names_a_non_executable(tmp_path: Path) -> None:
    plain = tmp_path / "localproxy"
    plain.write_text("", encoding="utf-8")
    with pytest.raises(LocalProxyNotFound, match="is not an executable file"):
        find_localproxy({"SECURETUNNEL_LOCALPROXY": str(plain)})


def test_find_localproxy_order_env_then_path(tmp_path: Path) -> None:
    on_path = write_fake_localproxy(tmp_path)
    other = tmp_path / "elsewhere"
    other.mkdir()
    named = write_fake_localproxy(other, "my-localproxy")
    assert find_localproxy({"PATH": str(tmp_path)}) == str(on_path)
    env = {"PATH": str(tmp_path), "SECURETUNNEL_LOCALPROXY": str(named)}
    assert find_localproxy(env) == str(named)


def test_find_localproxy_says_where_it_looked(tmp_path: Path) -> None:
    if any(
        os.access(p, os.X_OK)
        for p in ("/opt/localproxy/localproxy", "/opt/localproxy/bin/localproxy")
    ):
        pytest.skip("a localproxy is installed in /opt/localproxy")
    with pytest.raises(LocalProxyNotFound) as raised:
        find_localproxy({"PATH": str(tmp_path)})
    assert str(raised.value) == (
        "reference localproxy binary not found: set SECURETUNNEL_LOCALPROXY=/path/to/localproxy, "
        "put localproxy on PATH, or install it as /opt/localproxy/localproxy"
    )


# -- arguments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "services", "message"),
    [
        ("both", {"SSH": None}, "mode must be 'source' or 'destination', not 'both'"),
        ("source", {}, "services must map at least one service id to a port or address"),
        ("source", {"S S": None}, "service id 'S S' must match [a-zA-Z0-9_-]+"),
        ("source", {"SSH": 70000}, "source port for 'SSH' must be an int from 1 to 65535"),
        ("source", {"SSH": "22"}, "source port for 'SSH' must be an int from 1 to 65535"),
        ("destination", {"SSH": 0}, "destination for 'SSH' must be a port (1-65535) or"),
        ("destination", {"SSH": None}, "destination for 'SSH' must be a port (1-65535) or"),
        ("destination", {"SSH": "a b:22"}, "destination for 'SSH' must be a port (1-65535) or"),
    ],
)
def test_bad_arguments_are_refused_before_starting(
    binary: Path, mode: Any, services: Any, message: str
) -> None:
    with pytest.raises(ValueError) as raised:
        make(binary, mode, services)
    assert str(raised.value).startswith(message)


def test_reserved_port_is_free_for_a_reuseaddr_bind() -> None:
    port = reserve_port()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1)


# -- running --------------------------------------------------------------------------------


def test_source_gets_free_ports_flags_and_log(binary: Path, no_threads_left: None) -> None:
    local = make(binary, "source", {"SSH": None, "HTTP": 0}, client_token="c" * 32)
    with local:
        local.wait_ready(10)
        assert set(local.ports) == {"SSH", "HTTP"}
        assert all(1 <= port <= 65535 for port in local.ports.values())
        ssh, http = local.ports["SSH"], local.ports["HTTP"]
        assert local.args[1:] == [
            "-e", "127.0.0.1:4443", "-c", CA_DIR, "-s", f"SSH={ssh},HTTP={http}",
            "-b", "127.0.0.1", "-v", "5",
        ]  # fmt: skip
        socket.create_connection(("127.0.0.1", ssh), 5).close()  # it listens already
        local.wait_for("fake localproxy: stderr works")  # stderr is captured too
        assert f"Listening for new connection on port {http}" in local.log
        assert "token-length=5 client-token=" + "c" * 32 in local.log
        assert local.returncode is None
        assert local.running
        pid = local.process.pid
    assert local.returncode == -15  # SIGTERM
    assert not alive(pid)  # reaped: no zombie
    assert local.process.stdout is not None and local.process.stdout.closed


def test_destination_flags_and_ready_marker(binary: Path) -> None:
    with make(binary, "destination", {"SSH": "127.0.0.1:22", "HTTP": 8080}) as local:
        assert local.wait_ready() is local
        assert local.ports == {}
        assert local.args[1:] == [
            "-e", "127.0.0.1:4443", "-c", CA_DIR, "-d", "SSH=127.0.0.1:22,HTTP=8080", "-v", "5",
        ]  # fmt: skip


def test_no_ca_dir_passes_no_c_flag_and_extra_args_come_last(binary: Path) -> None:
    with make(binary, "destination", {"SSH": 22}, ca_dir=None, args=["-y", "V2"]) as local:
        local.wait_ready()
        assert local.args[1:] == ["-e", "127.0.0.1:4443", "-d", "SSH=22", "-v", "5", "-y", "V2"]


def test_stop_kills_a_process_that_ignores_sigterm(binary: Path) -> None:
    local = make(binary, "destination", {"SSH": 22}, env={"FAKE_LOCALPROXY": "ignore-term"})
    local.start().wait_ready()
    pid = local.process.pid
    assert local.stop(timeout=0.2) == -9
    assert not alive(pid)
    assert local.stop() == -9  # idempotent


def test_process_ending_before_ready_raises_with_the_log(binary: Path) -> None:
    with make(binary, "source", {"SSH": None}, env={"FAKE_LOCALPROXY": "exit"}) as local:
        with pytest.raises(ReferenceLocalProxyError) as raised:
            local.wait_ready()
        message = str(raised.value)
        assert message.startswith(
            "localproxy source ended (exit code 1) without logging "
            "'Listening for new connection on port N'; log tail:\n"
        )
        assert "Web socket close received. Code: 1011; Reason: fake failure" in message
        assert local.returncode == 1


def test_a_taken_port_restarts_on_another_with_a_client_token(binary: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        with make(binary, "source", {"SSH": busy}, client_token="c" * 32) as local:
            local.wait_ready()
            assert local.ports["SSH"] != busy
            assert f"Could not bind to address: 127.0.0.1:{busy} -- " in local.log
            assert local.count("Running AWS IoT Secure Tunneling Local Proxy") == 2
            assert local.args[local.args.index("-s") + 1] == f"SSH={local.ports['SSH']}"


def test_a_taken_port_without_client_token_is_an_error(binary: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        with (
            make(binary, "source", {"SSH": busy}) as local,
            pytest.raises(ReferenceLocalProxyError) as raised,
        ):
            local.wait_ready()
    assert str(raised.value).startswith(
        f"localproxy source could not bind port(s) [{busy}] "
        "(give a client token to allow a restart); log tail:\n"
    )


def test_wait_for_times_out_with_the_log_tail(binary: Path) -> None:
    with make(binary, "destination", {"SSH": 22}) as local:
        local.wait_ready()
        with pytest.raises(ReferenceLocalProxyError) as raised:
            local.wait_for("never printed", 0.05)
    assert str(raised.value).startswith(
        "localproxy destination did not log 'never printed' within 0.05s; log tail:\n"
    )


class OneEndpoint:
    host_port = "127.0.0.1:1111"
    ca_dir = CA_DIR


class RegionalEndpoints(OneEndpoint):
    def host_port_for(self, region: str) -> str:
        return {"eu-west-1": "127.0.0.1:2222"}[region]


def test_region_runs_with_r_and_maps_the_region_to_the_endpoint(binary: Path) -> None:
    proxy, endpoint = RegionalEndpoints(), "127.0.0.1:2222"
    with ReferenceLocalProxy.for_proxy(
        proxy, "TOKEN", "destination", {"SSH": 22}, region="eu-west-1", binary=str(binary)
    ) as local:
        local.wait_ready()
        settings = Path(local.args[4])
        assert local.args[1:6] == ["-r", "eu-west-1", "--settings-json", str(settings), "-c"]
        assert json.loads(settings.read_text(encoding="utf-8")) == {
            "tunneling": {"proxy": {"region_endpoint_overrides": {"eu-west-1": endpoint}}}
        }
        local.wait_for(f"with proxy server: wss://{endpoint}")


def test_without_region_the_default_endpoint_is_used(binary: Path) -> None:
    local = ReferenceLocalProxy.for_proxy(
        RegionalEndpoints(),  # type: ignore[arg-type]
        "TOKEN",
        "source",
        {"SSH": None},
        binary=str(binary),
    )
    assert (local.endpoint, local.region, local.ca_dir) == ("127.0.0.1:1111", None, CA_DIR)


def test_region_refuses_a_second_settings_file(binary: Path) -> None:
    with pytest.raises(ValueError, match="region= passes its own --settings-json"):
        make(binary, "source", {"SSH": None}, region="eu-west-1", args=["--settings-json", "x"])


# -- the fixture, as a user's suite uses it ----------------------------------------------------


def test_fixture_skips_with_the_reason_when_the_binary_is_absent(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-localproxy")
    monkeypatch.setenv("SECURETUNNEL_LOCALPROXY", missing)
    pytester.makepyfile(
        """
        def test_uses_it(securetunnel_localproxy):
            raise AssertionError("not reached")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED [[]1[]] *: reference localproxy binary not found: "
            f"SECURETUNNEL_LOCALPROXY='{missing}' does not exist"
        ]
    )


FIXTURE_TEST = """
import os
import pathlib
import socket

def test_it(securetunnel, securetunnel_proxy, securetunnel_localproxy, tmp_path):
    tunnel = securetunnel.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
    source = securetunnel_localproxy(tunnel["sourceAccessToken"], "source", {"SSH": None})
    destination = securetunnel_localproxy(
        tunnel["destinationAccessToken"], "destination", {"SSH": 22}
    )
    pids = f"{source.process.pid} {destination.process.pid}"
    pathlib.Path(os.environ["PIDS_FILE"]).write_text(pids)
    assert source.args[1:7] == [
        "-e", securetunnel_proxy.host_port, "-c", securetunnel_proxy.ca_dir,
        "-s", f"SSH={source.ports['SSH']}",
    ]
    assert source.returncode is None and destination.returncode is None
    socket.create_connection(("127.0.0.1", source.ports["SSH"]), 5).close()
    assert OUTCOME
"""


@pytest.mark.parametrize("outcome", ["True", "False"])
def test_fixture_starts_stops_and_reports_logs_on_failure(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, outcome: str
) -> None:
    binary = write_fake_localproxy(tmp_path)
    monkeypatch.setenv("SECURETUNNEL_LOCALPROXY", str(binary))
    monkeypatch.setenv("PIDS_FILE", str(tmp_path / "pids"))
    pytester.makepyfile(FIXTURE_TEST.replace("OUTCOME", outcome))
    TunnelProxy(SecureTunnelFake())  # the process's CA, made outside pytester's module snapshot
    result = pytester.runpytest("-p", "no:cacheprovider")
    pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
    assert not [pid for pid in pids if alive(pid)]  # stopped and reaped at teardown
    if outcome == "True":
        result.assert_outcomes(passed=1)
        assert "securetunnel localproxy" not in result.stdout.str()
        return
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- securetunnel localproxy source #1 log -*",
            f"$ {binary} -e 127.0.0.1:* -c * -s SSH=* -b 127.0.0.1 -v 5",
            "[[]running[]]",
            "Running AWS IoT Secure Tunneling Local Proxy version: v0.0.0-fake",
            "*[[]info[]] Listening for new connection on port *",
            "*- securetunnel localproxy destination #2 log -*",
            "*Successfully established websocket connection with proxy server: wss://127.0.0.1:*",
        ]
    )
