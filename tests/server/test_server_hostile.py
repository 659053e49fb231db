"""Server mode under hostile input: bad values, bad HTTP, floods; bounded answers."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from helpers_server import ACCESS_KEY, SECRET_KEY, Lines, call, cli_environment, request

from pytest_securetunnel.server import HttpLimits, SecureTunnelServer, main


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


# -- HTTP parsing and limits -----------------------------------------------------------


def exchange(server: SecureTunnelServer, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes on a new connection; everything the server sends until it closes."""
    host, port = server.endpoint_url.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def answers(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Every (status, JSON body) in a stream of HTTP responses."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
        out.append((status, json.loads(rest[:length]) if length else {}))
        raw = rest[length:]
    return out


def api_request(body: bytes, length: str | None = None, extra: str = "") -> bytes:
    size = str(len(body)) if length is None else length
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: IoTSecuredTunneling.ListTunnels\r\n"
        f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {size}\r\n{extra}\r\n"
    ).encode() + body


SMUGGLED = b"POST /_securetunnel/reset HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.parametrize(
    ("length", "needle"),
    [("-1", "Content-Length"), ("1_0", "Content-Length"), ("0x10", "Content-Length")],
)
def test_a_bad_content_length_is_a_400_and_nothing_is_smuggled(
    server: SecureTunnelServer, length: str, needle: str
) -> None:
    opened = call(server.endpoint_url, "OpenTunnel", {})[2]
    raw = exchange(server, api_request(SMUGGLED, length))
    ((status, body),) = answers(raw)  # one answer, then the connection is closed
    assert (status, body["__type"]) == (400, "MalformedHttpRequest")
    assert body["message"].startswith("malformed HTTP request:")
    assert [t.tunnel_id for t in server.fake] == [opened["tunnelId"]]  # no reset happened
    assert server.errors == []


def test_a_huge_content_length_is_a_413_before_any_body_is_read(
    server: SecureTunnelServer,
) -> None:
    started = time.monotonic()
    ((status, body),) = answers(exchange(server, api_request(b"{}", str(50 * 2**30))))
    assert time.monotonic() - started < 5
    assert (status, body["__type"]) == (413, "RequestEntityTooLarge")
    assert body["message"] == (
        "request body of 53687091200 bytes is larger than this server accepts (1048576 bytes)"
    )
    assert server.errors == []


def test_a_chunked_body_over_the_limit_is_a_413() -> None:
    limits = HttpLimits(max_body_bytes=1000)
    with SecureTunnelServer(data_plane=False, limits=limits) as server:
        chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
        request = (
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: IoTSecuredTunneling.ListTunnels\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk + b"0\r\n\r\n"
        )
        ((status, body),) = answers(exchange(server, request))
        assert (status, body["message"]) == (
            413,
            "request body of more than 1000 bytes is larger than this server accepts (1000 bytes)",
        )
        ok = b"2\r\n{}\r\n0\r\n\r\n"
        ((status, body),) = answers(
            exchange(
                server,
                request.replace(chunk + b"0\r\n\r\n", ok).replace(b"1.1\r\nHost", b"1.0\r\nHost"),
            )
        )
        assert (status, body) == (200, {"tunnelSummaries": []})


@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
            "both Content-Length and Transfer-Encoding are set",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", 400, "control character"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "Only Transfer-Encoding: chunked is supported",
        ),
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 400, "Host"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, "malformed"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400, "malformed"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
            "request line and headers are longer than this server accepts (16384 bytes)",
        ),
    ],
)
def test_malformed_requests_get_a_prompt_answer_with_a_reason(
    server: SecureTunnelServer, data: bytes, status: int, needle: str
) -> None:
    started = time.monotonic()
    ((got, body),) = answers(exchange(server, data))
    assert time.monotonic() - started < 5
    assert got == status
    assert needle in body["message"]
    assert server.errors == []


def test_repeated_signing_headers_are_refused(server: SecureTunnelServer) -> None:
    extra = "X-Amz-Target: IoTSecuredTunneling.CloseTunnel\r\n"
    ((status, body),) = answers(
        exchange(server, api_request(b"{}", extra=extra + "Connection: close\r\n"))
    )
    assert (status, body["__type"]) == (400, "MalformedHttpRequest")
    assert body["message"] == "header 'x-amz-target' appears 2 times; send it once"


def test_slowloris_connections_hold_no_thread_and_get_a_408() -> None:
    limits = HttpLimits(request_timeout=0.5)
    with SecureTunnelServer(data_plane=False, limits=limits) as server:
        host, port = server.endpoint_url.rsplit("/", 1)[1].rsplit(":", 1)
        threads = threading.active_count()
        sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(50)]
        try:
            started = time.monotonic()
            for sock in sockets:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert threading.active_count() <= threads
            for sock in sockets:
                raw = b""
                while chunk := sock.recv(65536):
                    raw += chunk
                ((status, body),) = answers(raw)
                assert (status, body["__type"]) == (408, "RequestTimeout")
            assert time.monotonic() - started < 5
            # The server still answers at once.
            assert call(server.endpoint_url, "ListTunnels", {})[0] == 200
        finally:
            for sock in sockets:
                sock.close()


def test_connections_over_the_cap_get_a_503() -> None:
    limits = HttpLimits(max_connections=5)
    with SecureTunnelServer(data_plane=False, limits=limits) as server:
        host, port = server.endpoint_url.rsplit("/", 1)[1].rsplit(":", 1)
        held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(5)]
        try:
            wait_for(lambda: server._http is not None and server._http.connection_count == 5)
            ((status, body),) = answers(exchange(server, api_request(b"{}")))
            assert (status, body["__type"]) == (503, "ServiceUnavailable")
            assert "at most 5 at once" in body["message"]
        finally:
            for sock in held:
                sock.close()
        wait_for(lambda: server._http is not None and server._http.connection_count == 0)
        assert call(server.endpoint_url, "ListTunnels", {})[0] == 200


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- who may use the admin API ----------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com", ""])
def test_listening_beyond_loopback_needs_allow_remote(host: str) -> None:
    with pytest.raises(ValueError) as info:
        SecureTunnelServer(host=host, data_plane=False)
    assert str(info.value).startswith(f"host {host!r} is not a loopback address")
    assert "allow_remote=True (serve --allow-remote)" in str(info.value)


def test_serve_refuses_a_remote_host_without_allow_remote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--host", "0.0.0.0", "--no-data-plane"]) == 2
    err = capsys.readouterr().err
    assert "error: host '0.0.0.0' is not a loopback address" in err
    assert "--allow-remote" in err


def test_a_remote_server_guards_its_admin_api_with_a_token() -> None:
    # Not started: tests listen on loopback only.
    remote = SecureTunnelServer(host="0.0.0.0", allow_remote=True, data_plane=False)
    assert remote.admin_token is not None and len(remote.admin_token) >= 32
    assert SecureTunnelServer(data_plane=False).admin_token is None
    assert SecureTunnelServer(data_plane=False, admin_token="t").admin_token == "t"


@pytest.fixture
def keyed_server() -> Iterator[SecureTunnelServer]:
    with SecureTunnelServer(
        data_plane=False, access_keys={ACCESS_KEY: SECRET_KEY}, admin_token="let-me-in"
    ) as server:
        yield server


def test_with_access_keys_the_admin_api_needs_credentials(
    keyed_server: SecureTunnelServer,
) -> None:
    url = keyed_server.endpoint_url
    keyed_server.fake.call("OpenTunnel", {})
    for method, route, body in [
        ("GET", "state", b""),
        ("POST", "clock/advance", b'{"hours": 13}'),
        ("POST", "reset", b""),
    ]:
        status, _, raw = request(url, method, f"/_securetunnel/{route}", body)
        answer = json.loads(raw)
        assert (status, answer["error"]) == (401, "AdminUnauthorized")
        assert answer["message"].startswith("no credentials were sent. The admin API")
        assert "sourceAccessToken" not in raw.decode()
    assert keyed_server.fake.status(next(iter(keyed_server.fake))) == "OPEN"
    wrong = {"Authorization": "Bearer guess"}
    status, _, raw = request(url, "GET", "/_securetunnel/state", headers=wrong)
    assert (status, json.loads(raw)["message"].split(".")[0]) == (
        401,
        "the bearer token is not this server's admin token",
    )
    right = {"Authorization": "Bearer let-me-in"}
    status, _, raw = request(url, "GET", "/_securetunnel/state", headers=right)
    assert status == 200 and len(json.loads(raw)["tunnels"]) == 1


def test_a_sigv4_signed_admin_request_is_accepted(keyed_server: SecureTunnelServer) -> None:
    url = keyed_server.endpoint_url
    signed = AWSRequest(method="GET", url=url + "/_securetunnel/clock", data=b"")
    signed.headers["Host"] = url.split("//", 1)[1]
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "IoTSecuredTunneling", "us-east-1").add_auth(
        signed
    )
    status, _, raw = request(url, "GET", "/_securetunnel/clock", headers=dict(signed.headers))
    assert (status, sorted(json.loads(raw))) == (200, ["iso", "time"])
    forged = dict(signed.headers)
    forged["Authorization"] = forged["Authorization"][:-4] + "0000"
    status, _, raw = request(url, "GET", "/_securetunnel/clock", headers=forged)
    assert (status, json.loads(raw)["message"].split(":")[0]) == (401, "InvalidSignatureException")


# -- serve under the same attacks --------------------------------------------------------


def test_serve_under_attack_answers_each_and_stops_cleanly_on_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_securetunnel",
            "serve",
            "--no-tls",
            "--access-key",
            f"{ACCESS_KEY}:{SECRET_KEY}",
            "--request-timeout",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_environment(),
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        info = json.loads(out.next_matching('"event": "ready"'))
        assert f"admin API token: {info['admin_token']}" in "\n".join(out.seen)
        host, port = info["endpoint_url"].rsplit("/", 1)[1].rsplit(":", 1)
        address = (host, int(port))

        def answer(data: bytes) -> tuple[int, Any]:
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(data)
                raw = b""
                while chunk := sock.recv(65536):
                    raw += chunk
            ((status, body),) = answers(raw)
            return status, body.get("__type") or body.get("error")

        nested = b"[" * 100_000 + b"]" * 100_000
        admin = (
            b"POST /_securetunnel/clock/advance HTTP/1.1\r\nHost: x\r\n"
            b'Content-Length: 14\r\nConnection: close\r\n\r\n{"hours": NaN}'
        )
        assert answer(admin) == (401, "AdminUnauthorized")
        bearer = f"Authorization: Bearer {info['admin_token']}\r\n".encode()
        assert answer(admin.replace(b"Host: x\r\n", b"Host: x\r\n" + bearer)) == (
            400,
            "InvalidArgument",
        )
        assert answer(api_request(nested, extra="Connection: close\r\n")) == (
            403,
            "MissingAuthenticationTokenException",
        )
        signed = AWSRequest(method="POST", url=info["endpoint_url"] + "/", data=nested)
        signed.headers["X-Amz-Target"] = "IoTSecuredTunneling.OpenTunnel"
        signed.headers["Content-Type"] = "application/x-amz-json-1.1"
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "IoTSecuredTunneling", "us-east-1").add_auth(
            signed
        )
        head = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
        request_line = f"POST / HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
        data = f"{request_line}Content-Length: {len(nested)}\r\nConnection: close\r\n\r\n"
        assert answer(data.encode() + nested) == (400, "SerializationException")
        assert answer(api_request(SMUGGLED, "-1")) == (400, "MalformedHttpRequest")
        assert answer(api_request(b"", str(50 * 2**30))) == (413, "RequestEntityTooLarge")
        slow = [socket.create_connection(address, timeout=10) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        for sock in slow:
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
            sock.close()
            assert answers(raw)[0][0] == 408
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert json.loads(out.next_matching('"event": "stopped"')) == {
            "event": "stopped",
            "signal": "SIGTERM",
        }
        logged = err.finish()
        assert not [line for line in logged if "Traceback" in line or "internal error" in line]
        assert "http 408 RequestTimeout 0.0ms" in logged
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        out.finish()
        err.finish()
        process.stdout.close()
        process.stderr.close()


def test_info_stays_open_and_never_shows_the_token(keyed_server: SecureTunnelServer) -> None:
    status, _, raw = request(keyed_server.endpoint_url, "GET", "/_securetunnel/info")
    info = json.loads(raw)
    assert (status, info["admin_requires_credentials"]) == (200, True)
    assert "let-me-in" not in raw.decode()
