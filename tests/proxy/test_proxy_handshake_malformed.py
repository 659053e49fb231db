"""Malformed handshakes: each gets a 400 with a reason at once, never a silent close."""

from __future__ import annotations

import socket
import time

import pytest
from websockets.http11 import Response

from pytest_securetunnel.proxy import TunnelProxy

from .conftest import parse_response, request_bytes

#: Longest a refusal may take; the socket times out after twice this.
PROMPT = 1.0


def answer(port: int, raw: bytes, *, end_stream: bool = False) -> tuple[Response, float]:
    """Send ``raw`` (then the end of the stream, if asked) without waiting on our side;
    read the answer until the proxy closes. Returns it and how long it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=2 * PROMPT) as sock:
        start = time.monotonic()
        sock.sendall(raw)
        if end_stream:
            sock.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := sock.recv(65536):  # a silent proxy fails here with a timeout
            received += chunk
        elapsed = time.monotonic() - start
    assert received, "the proxy closed the connection without an answer"
    return parse_response(bytes(received)), elapsed


TARGET_RULE = (
    "Invalid request: The request target must be a path: / then visible ASCII characters "
    "(percent-encode others); got "
)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(
            request_bytes(token="t", headers=[("X-Test", "a\x01b")]),
            "Invalid request: Invalid HTTP header value: a\\x01b.",
            id="control-character-in-value",
        ),
        pytest.param(
            request_bytes(token="t", headers=[("X-Test", "a\rb")]),
            "Invalid request: Invalid HTTP header value: a\\rb.",
            id="bare-cr-in-value",
        ),
        pytest.param(
            request_bytes(token="t", headers=[("Content-Length", "5")]) + b"hello",
            "Invalid request: Unsupported request body.",
            id="request-body",
        ),
        pytest.param(
            request_bytes(token="t", headers=[("Transfer-Encoding", "chunked")]) + b"0\r\n\r\n",
            "Invalid request: Transfer codings aren't supported.",
            id="transfer-encoding",
        ),
        pytest.param(
            request_bytes(token="t", headers=[("Bad Name", "x")]),
            "Invalid request: Invalid HTTP header name: Bad Name.",
            id="space-in-header-name",
        ),
        pytest.param(
            request_bytes(token="t").replace(b"\r\n", b"\n"),
            "Invalid request: Lines must end with CRLF; line 1 ends with a bare LF.",
            id="lf-line-endings",
        ),
        pytest.param(
            b"GET /tunnel HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",
            "Invalid request: Lines must end with CRLF; line 2 ends with a bare LF.",
            id="one-bare-lf",
        ),
        pytest.param(
            b"\x00\x01\x02\xff garbage",
            "Invalid request: The handshake must be an HTTP/1.1 GET request; got "
            "'\\x00\\x01\\x02ÿ garbage'.",
            id="garbage",
        ),
        pytest.param(
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
            "Invalid request: Got a TLS handshake on the ws:// port; use the wss:// endpoint.",
            id="tls-on-ws-port",
        ),
        pytest.param(
            b"GET /t\xc3\xbcnnel?local-proxy-mode=source HTTP/1.1\r\n",
            TARGET_RULE + "'/tÃ¼nnel?local-proxy-mode=source'.",
            id="non-ascii-path",
        ),
        pytest.param(
            request_bytes(target="http://127.0.0.1/tunnel?local-proxy-mode=source", token="t"),
            TARGET_RULE + "'http://127.0.0.1/tunnel?local-proxy-mode=source'.",
            id="absolute-form",
        ),
        pytest.param(
            request_bytes(target="//tunnel?local-proxy-mode=source", token="t"),
            "Invalid request path: The path must be /tunnel; got '//tunnel'.",
            id="double-slash-path",
        ),
    ],
)
def test_malformed_handshake_gets_a_prompt_400_with_its_reason(
    proxy: TunnelProxy, raw: bytes, reason: str
) -> None:
    response, elapsed = answer(proxy.port, raw)
    assert (response.status_code, response.body.decode()) == (400, reason)
    assert elapsed < PROMPT
    event = proxy.wait_for("refused", timeout=5)
    assert (event.code, event.reason) == (400, reason)


def test_request_cut_short_by_the_end_of_stream_gets_a_400(proxy: TunnelProxy) -> None:
    response, elapsed = answer(proxy.port, b"GET /tunnel HTTP/1.1\r\nHost: x\r\n", end_stream=True)
    assert response.status_code == 400
    assert response.body.decode() == (
        "Invalid request: Connection closed while reading HTTP headers."
    )
    assert elapsed < PROMPT


def test_garbage_after_a_plausible_start_is_refused_before_the_line_ends(
    proxy: TunnelProxy,
) -> None:
    response, elapsed = answer(proxy.port, b"GET /tunnel HTTP/2")
    assert response.status_code == 400
    assert response.body.decode() == (
        "Invalid request: The handshake must be an HTTP/1.1 GET request; got 'GET /tunnel HTTP/2'."
    )
    assert elapsed < PROMPT
