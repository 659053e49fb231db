"""Handshake checks: every refusal is a 400 with a plain-text reason and a channel-id."""

from __future__ import annotations

import re

import pytest

from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import (
    CLIENT_TOKEN,
    V1,
    V2,
    V3,
    RawClient,
    open_tunnel,
    raw_exchange,
    request_bytes,
)

CHANNEL_ID = re.compile(r"[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{8}")


def assert_refused(proxy: TunnelProxy, request: bytes, body: str) -> None:
    """The proxy answers ``request`` with 400, ``body`` and a channel-id."""
    response = raw_exchange(proxy.port, request)
    assert response.status_code == 400
    assert response.body.decode() == body
    assert CHANNEL_ID.fullmatch(response.headers["channel-id"])
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "X-Status-Reason" not in response.headers


def test_accepted_handshake_echoes_subprotocol_and_sets_channel_id(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    client = RawClient(proxy.port, opened["sourceAccessToken"], "source")
    try:
        headers = client.response.headers
        assert client.response.status_code == 101
        assert headers["Sec-WebSocket-Protocol"] == V3
        assert CHANNEL_ID.fullmatch(headers["channel-id"])
        assert "Sec-WebSocket-Extensions" not in headers  # deflate only when offered
        assert "Server" not in headers
    finally:
        client.close()
    event = proxy.wait_for("connected", mode="source")
    assert event.reason == V3
    assert event.channel_id == headers["channel-id"]


def test_subprotocol_is_the_clients_first_supported_offer(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    offer = f"chat, {V1}, {V3}"
    request = request_bytes(token=opened["sourceAccessToken"], subprotocol=offer)
    response = raw_exchange(proxy.port, request)
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Protocol"] == V1


def test_token_in_cookie_is_accepted(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    cookie = f"other=1; awsiot-tunnel-token={opened['sourceAccessToken']}"
    response = raw_exchange(proxy.port, request_bytes(headers=[("Cookie", cookie)]))
    assert response.status_code == 101


def test_permessage_deflate_only_when_offered(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    offer = [("Sec-WebSocket-Extensions", "permessage-deflate")]
    request = request_bytes(token=opened["sourceAccessToken"], headers=offer)
    response = raw_exchange(proxy.port, request)
    assert response.status_code == 101
    assert response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")


@pytest.mark.parametrize(
    ("request_", "body"),
    [
        (
            b"POST /tunnel?local-proxy-mode=source HTTP/1.1\r\nHost: x\r\n\r\n",
            "Invalid request: The handshake must be an HTTP/1.1 GET request; got "
            "'POST /tunnel?local-proxy-mode=source HTTP/1.1'.",
        ),
        (
            b"GET /tunnel HTTP/1.0\r\nHost: x\r\n\r\n",
            "Invalid request: The handshake must be an HTTP/1.1 GET request; got "
            "'GET /tunnel HTTP/1.0'.",
        ),
        (
            b"GET /tunnel HTTP/1.1\r\nno colon here\r\n\r\n",
            "Invalid request: Malformed header line 'no colon here'.",
        ),
        (
            b"GET /tunnel HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n",
            "Invalid request: The handshake request has more than 100 headers.",
        ),
        (
            request_bytes(headers=[("X-Padding", "p" * 4000)], token="t"),
            "Invalid request: The handshake request is larger than 4096 bytes.",
        ),
        (
            b"GET /tunnel HTTP/1.1\r\nX-Endless: " + b"z" * 5000,
            "Invalid request: The handshake request is larger than 4096 bytes.",
        ),
    ],
    ids=["method", "http-version", "header-line", "header-count", "size", "size-unterminated"],
)
def test_malformed_requests_are_refused_before_parsing(
    proxy: TunnelProxy, request_: bytes, body: str
) -> None:
    assert_refused(proxy, request_, body)
    event = proxy.wait_for("refused")
    assert (event.code, event.reason) == (400, body)


def test_request_of_exactly_4096_bytes_is_accepted(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    base = request_bytes(token=opened["sourceAccessToken"], headers=[("X-Padding", "")])
    padded = base.replace(b"X-Padding: ", b"X-Padding: " + b"p" * (4096 - len(base)))
    assert len(padded) == 4096
    assert raw_exchange(proxy.port, padded).status_code == 101


MODE_REQUIRED = (
    "Invalid local proxy mode: The local-proxy-mode query parameter is required and must be "
    "source or destination."
)
TOKEN_REQUIRED = (
    "Invalid access token: An access token is required in the access-token header or the "
    "awsiot-tunnel-token cookie."
)


@pytest.mark.parametrize(
    ("kwargs", "body"),
    [
        (
            {"target": "/tunnels?local-proxy-mode=source"},
            "Invalid request path: The path must be /tunnel; got '/tunnels'.",
        ),
        ({"target": "/tunnel"}, MODE_REQUIRED),
        ({"target": "/tunnel?mode=source"}, MODE_REQUIRED),
        (
            {"target": "/tunnel?local-proxy-mode=SOURCE"},
            "Invalid local proxy mode: 'SOURCE' is not valid; it must be source or destination.",
        ),
        (
            {"target": "/tunnel?local-proxy-mode=source&local-proxy-mode=source"},
            "Invalid local proxy mode: The local-proxy-mode query parameter must be given "
            "once; got 2 values.",
        ),
        ({}, TOKEN_REQUIRED),
        ({"headers": [("access-token", "")]}, TOKEN_REQUIRED),
        (
            {"headers": [("access-token", "a"), ("access-token", "b")]},
            "Invalid access token: Exactly one access token is allowed, in the access-token "
            "header or the awsiot-tunnel-token cookie; got 2.",
        ),
        (
            {"headers": [("access-token", "a"), ("Cookie", "awsiot-tunnel-token=a")]},
            "Invalid access token: Exactly one access token is allowed, in the access-token "
            "header or the awsiot-tunnel-token cookie; got 2.",
        ),
        (
            {"headers": [("access-token", "a"), ("client-token", "short")]},
            "Invalid client token: The client token must be 32 to 128 letters, digits or "
            "hyphens (^[a-zA-Z0-9-]{32,128}$); got 5 characters.",
        ),
        (
            {"headers": [("access-token", "a"), ("client-token", "x" * 31 + "_")]},
            "Invalid client token: The client token must be 32 to 128 letters, digits or "
            "hyphens (^[a-zA-Z0-9-]{32,128}$); got 32 characters.",
        ),
        (
            {
                "headers": [
                    ("access-token", "a"),
                    ("client-token", CLIENT_TOKEN),
                    ("client-token", CLIENT_TOKEN),
                ]
            },
            "Invalid client token: At most one client-token header is allowed; got 2.",
        ),
        (
            {"token": "a", "subprotocol": None},
            "Invalid subprotocol: The Sec-WebSocket-Protocol header must offer one of "
            f"{V3}, {V2}, {V1}; got none.",
        ),
        (
            {"token": "a", "subprotocol": "aws.iot.securetunneling-4.0, chat"},
            "Invalid subprotocol: The Sec-WebSocket-Protocol header must offer one of "
            f"{V3}, {V2}, {V1}; got aws.iot.securetunneling-4.0, chat.",
        ),
        (
            {"token": "a", "websocket": False},
            "Invalid WebSocket upgrade request: Missing Connection header.",
        ),
        (
            {"token": "not-a-token"},
            "Invalid access token: The access token is not valid.",
        ),
    ],
    ids=[
        "path",
        "mode-missing",
        "mode-other-name",
        "mode-case",
        "mode-twice",
        "token-missing",
        "token-empty",
        "token-twice",
        "token-header-and-cookie",
        "client-token-short",
        "client-token-charset",
        "client-token-twice",
        "subprotocol-missing",
        "subprotocol-unsupported",
        "not-websocket",
        "token-unknown",
    ],
)
def test_invalid_handshakes_are_refused_with_a_reason(
    proxy: TunnelProxy, kwargs: dict[str, object], body: str
) -> None:
    assert_refused(proxy, request_bytes(**kwargs), body)  # type: ignore[arg-type]


def test_syntax_is_checked_before_the_token_is_used(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    token = opened["sourceAccessToken"]
    response = raw_exchange(proxy.port, request_bytes(token=token, subprotocol="chat"))
    assert response.status_code == 400
    assert raw_exchange(proxy.port, request_bytes(token=token)).status_code == 101
    refused = proxy.wait_for("refused")
    assert (refused.tunnel_id, refused.mode) == (opened["tunnelId"], "source")


def test_token_cannot_be_used_twice(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    token = opened["sourceAccessToken"]
    assert raw_exchange(proxy.port, request_bytes(token=token)).status_code == 101
    assert_refused(
        proxy,
        request_bytes(token=token),
        "Invalid access token: The access token was previously used and can not be used again.",
    )


def test_token_for_the_other_mode_is_refused(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    assert_refused(
        proxy,
        request_bytes(token=opened["destinationAccessToken"]),
        "Invalid local proxy mode: the access token is for destination mode, but "
        "local-proxy-mode is source.",
    )


def test_closed_tunnel_is_refused_with_status_reason(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    response = raw_exchange(proxy.port, request_bytes(token=opened["sourceAccessToken"]))
    assert response.status_code == 400
    assert response.body == b"Tunnel is closed"
    assert response.headers["X-Status-Reason"] == "Tunnel is closed"
    assert CHANNEL_ID.fullmatch(response.headers["channel-id"])


def test_expired_tunnel_is_refused_with_status_reason(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, timeoutConfig={"maxLifetimeTimeoutMinutes": 1})
    fake.clock.advance(minutes=2)
    response = raw_exchange(proxy.port, request_bytes(token=opened["sourceAccessToken"]))
    assert response.status_code == 400
    assert response.headers["X-Status-Reason"] == "Tunnel is closed"


def test_rotated_token_is_refused(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    fake.call("RotateTunnelAccessToken", {"tunnelId": opened["tunnelId"], "clientMode": "SOURCE"})
    assert_refused(
        proxy,
        request_bytes(token=opened["sourceAccessToken"]),
        "Invalid access token: The access token was revoked by RotateTunnelAccessToken and can "
        "not be used again.",
    )


def test_client_token_allows_reconnecting(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    headers = [("client-token", CLIENT_TOKEN)]
    request = request_bytes(token=opened["sourceAccessToken"], headers=headers)
    assert raw_exchange(proxy.port, request).status_code == 101
    assert raw_exchange(proxy.port, request).status_code == 101
    other = request_bytes(token=opened["sourceAccessToken"], headers=[("client-token", "d" * 32)])
    assert_refused(
        proxy,
        other,
        "Invalid client token: The provided client token does not match the client token that "
        "was previously set.",
    )


def test_failing_control_plane_is_a_400_and_an_error_at_stop(fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom in the fake")

    proxy = TunnelProxy(fake, tls=False).start()
    fake.authorize_connection = broken  # type: ignore[method-assign, assignment]
    try:
        response = raw_exchange(proxy.port, request_bytes(token=opened["sourceAccessToken"]))
        assert response.status_code == 400
        assert response.body.startswith(b"Internal error: pytest-securetunnel's proxy failed")
    finally:
        with pytest.raises(Exception, match="boom in the fake") as raised:
            proxy.stop()
    assert isinstance(raised.value.__cause__, RuntimeError)
