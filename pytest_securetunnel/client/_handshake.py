"""Opening the tunnel WebSocket: URL, handshake headers and refusal errors."""

from __future__ import annotations

import contextlib
import dataclasses
import ssl as ssl_module
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync import client as sync_client
from websockets.typing import Subprotocol

from ..protocol import MAX_WEBSOCKET_FRAME_SIZE, ClientMode, ProtocolVersion
from ._errors import HandshakeError, HandshakeRefused

__all__ = [
    "KEEPALIVE_INTERVAL",
    "HeadersLike",
    "TokenLocation",
    "TunnelHandshake",
    "open_tunnel_websocket",
    "open_tunnel_websocket_sync",
    "tunnel_handshake",
    "tunnel_url",
]

#: Where the client access token goes: the ``access-token`` header or the cookie.
TokenLocation = Literal["header", "cookie"]
#: Extra handshake headers: a mapping or ``(name, value)`` pairs (names may repeat).
HeadersLike = Mapping[str, str] | Iterable[tuple[str, str]]

#: Seconds between keepalive pings (localproxy pings every 20 s).
KEEPALIVE_INTERVAL: Final = 20.0

_USER_AGENT = "pytest-securetunnel"


def tunnel_url(endpoint: str, mode: ClientMode, *, secure: bool) -> str:
    """Return ``{endpoint}/tunnel?local-proxy-mode={mode}``.

    ``endpoint`` is ``ws://host:port``, ``wss://host:port`` or ``host[:port]`` (as the
    localproxy ``-e`` option takes it); without a scheme, ``wss`` is used when ``secure``.
    """
    base = endpoint.rstrip("/")
    if "://" not in base:
        base = f"{'wss' if secure else 'ws'}://{base}"
    # All protocol guides: 'GET /tunnel?local-proxy-mode=source|destination'.
    return f"{base}/tunnel?local-proxy-mode={mode.value}"


@dataclasses.dataclass(frozen=True)
class TunnelHandshake:
    """The WebSocket request to a tunneling proxy (see :func:`tunnel_handshake`)."""

    url: str
    ssl: ssl_module.SSLContext | None
    arguments: dict[str, Any]


def _handshake_headers(
    token: str | None,
    token_in: TokenLocation,
    client_token: str | None,
    extra_headers: HeadersLike | None,
) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if token is not None:
        if token_in == "header":
            headers.append(("access-token", token))
        elif token_in == "cookie":
            headers.append(("Cookie", f"awsiot-tunnel-token={token}"))
        else:
            raise ValueError(f"token_in must be 'header' or 'cookie', not {token_in!r}")
    if client_token is not None:
        headers.append(("client-token", client_token))
    if extra_headers is not None:
        pairs = extra_headers.items() if isinstance(extra_headers, Mapping) else extra_headers
        headers.extend(pairs)
    return headers


def _refusal(exc: InvalidStatus) -> HandshakeRefused:
    response = exc.response
    body = (response.body or b"").decode("utf-8", errors="replace")
    return HandshakeRefused(
        response.status_code, response.reason_phrase, body, response.headers.copy()
    )


def tunnel_handshake(
    endpoint: str,
    token: str | None,
    mode: ClientMode,
    version: ProtocolVersion,
    *,
    client_token: str | None,
    ssl: ssl_module.SSLContext | None,
    token_in: TokenLocation,
    extra_headers: HeadersLike | None,
    open_timeout: float | None,
) -> TunnelHandshake:
    """What to ask of the proxy: the URL and the arguments of either websockets ``connect``.

    Raises ``ValueError`` for ``ssl=`` with a ``ws://`` endpoint.
    """
    url = tunnel_url(endpoint, mode, secure=ssl is not None)
    if ssl is not None and url.startswith("ws://"):
        raise ValueError(
            f"endpoint {endpoint!r} is plain ws:// but ssl= was given: pair ssl= with a "
            "wss:// endpoint (proxy.tls_endpoint, ssl=proxy.ssl_context), or drop ssl= "
            "to use the ws:// endpoint (proxy.endpoint)"
        )
    headers = _handshake_headers(token, token_in, client_token, extra_headers)
    return TunnelHandshake(
        url,
        ssl,
        {
            # localproxy offers exactly one subprotocol.
            "subprotocols": [Subprotocol(version.subprotocol)],
            "additional_headers": headers,
            "user_agent_header": _USER_AGENT,
            "compression": None,
            "proxy": None,
            "open_timeout": open_timeout,
            # localproxy: pings every 20 s and has no pong timeout.
            "ping_timeout": None,
            # All protocol guides: WebSocket frames are at most 131076 bytes.
            "max_size": MAX_WEBSOCKET_FRAME_SIZE,
        },
    )


@contextlib.contextmanager
def _handshake_errors(url: str, ssl: ssl_module.SSLContext | None) -> Iterator[None]:
    """Turn websockets' and ssl's handshake failures into :class:`HandshakeError`."""
    try:
        yield
    except InvalidStatus as exc:
        raise _refusal(exc) from None
    except InvalidHandshake as exc:
        raise HandshakeError(f"WebSocket handshake with {url} failed: {exc}") from exc
    except ssl_module.SSLCertVerificationError as exc:
        hint = (
            "the toolkit's proxy uses its own CA: pass ssl=proxy.ssl_context with "
            "proxy.tls_endpoint, or use proxy.endpoint (ws://) without ssl="
            if ssl is None
            else "the ssl= context does not trust the server's certificate"
        )
        raise HandshakeError(
            f"TLS certificate of {url} not trusted ({exc.verify_message}): {hint}"
        ) from exc


# localproxy: a 101 without Sec-WebSocket-Protocol is an error.
_NO_SUBPROTOCOL = "No websocket subprotocol returned from proxy server!"


async def open_tunnel_websocket(handshake: TunnelHandshake) -> ClientConnection:
    """Open the WebSocket to the tunneling proxy and check the negotiated subprotocol.

    Raises :class:`HandshakeRefused` for an HTTP error response and :class:`HandshakeError`
    for any other handshake failure, an untrusted certificate included. Connection errors
    (``OSError``) propagate.
    """
    url, ssl = handshake.url, handshake.ssl
    with _handshake_errors(url, ssl):
        websocket = await connect(
            url,
            # wss:// without a context: the system's trust store, as any client would.
            ssl=ssl if ssl is not None or url.startswith("ws://") else True,
            ping_interval=KEEPALIVE_INTERVAL,
            **handshake.arguments,
        )
    if websocket.subprotocol is None:
        await websocket.close()
        raise HandshakeError(_NO_SUBPROTOCOL)
    return websocket


def open_tunnel_websocket_sync(handshake: TunnelHandshake) -> sync_client.ClientConnection:
    """:func:`open_tunnel_websocket` on ``websockets.sync``, with the same errors.

    The connection sends no keepalive pings of its own: its reader pings every
    :data:`KEEPALIVE_INTERVAL` seconds, so no thread outlives :meth:`close`.
    """
    url, ssl = handshake.url, handshake.ssl
    with _handshake_errors(url, ssl):
        # wss:// without a context: websockets uses the system's trust store.
        connection: sync_client.ClientConnection = sync_client.connect(
            url, ssl=ssl, ping_interval=None, **handshake.arguments
        )
    # The caller owns the connection and closes it: the context manager protocol says so
    # (websockets 17.1+ warns about a connection used without it).
    websocket = connection.__enter__()
    if websocket.subprotocol is None:
        websocket.close()
        raise HandshakeError(_NO_SUBPROTOCOL)
    return websocket
