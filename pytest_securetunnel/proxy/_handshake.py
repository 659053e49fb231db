"""Checks on the tunneling WebSocket handshake request, in the order the proxy applies them.

The order (first failure wins; each refusal is HTTP 400 with a plain-text body):

1. the request head is at most 4096 bytes (raw bytes, :func:`preflight`);
2. it is ``GET <path> HTTP/1.1`` with CRLF line endings and well-formed header lines,
   which ``websockets``' own parser accepts (:func:`preflight`): no body, no
   ``Transfer-Encoding``, no control characters. Bytes that cannot begin such a request
   (garbage, a TLS handshake, a bare LF) are refused as soon as they arrive, and a
   request cut short by the client's end of stream when it ends;
3. the path is ``/tunnel``;
4. the query has exactly one ``local-proxy-mode``, ``source`` or ``destination``;
5. exactly one access token: ``access-token`` header(s) plus ``awsiot-tunnel-token``
   cookie(s), non-empty;
6. at most one ``client-token`` header, matching ``^[a-zA-Z0-9-]{32,128}$``;
7. ``Sec-WebSocket-Protocol`` offers a tunneling subprotocol; the proxy picks the
   client's first supported offer and echoes it (the service echoes its pick;
   localproxy offers only one and fails without the header);
8. the WebSocket upgrade itself is valid (``websockets``' checks);
9. the control plane admits the token (``SecureTunnelFake.authorize_connection``:
   unknown, closed or expired tunnel with ``X-Status-Reason: Tunnel is closed``,
   revoked, wrong mode, already used, client-token mismatch).

Syntax is checked before the token is used, so a malformed request never spends a
single-use access token. Bodies follow the service's one known message (docs/fidelity.md):
``Invalid access token: The access token was previously used and can not be used again.``
"""

from __future__ import annotations

import dataclasses
import email.utils
import os
import random
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import parse_qs

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.streams import StreamReader

from pytest_securetunnel._realtime import real_monotonic
from pytest_securetunnel.protocol import SUBPROTOCOLS
from pytest_securetunnel.service import Refusal

__all__ = [
    "MAX_REQUEST_SIZE",
    "ChannelIds",
    "HandshakeRequest",
    "check_request",
    "preflight",
    "raw_refusal",
    "request_hints",
    "select_subprotocol",
]

#: Largest handshake request head (request line + headers) the proxy accepts.
MAX_REQUEST_SIZE: Final = 4096
#: More header lines than this is refused (``websockets`` itself stops at 128).
_MAX_HEADER_LINES: Final = 100
# V3 guide, "client-token": 32 to 128 characters of letters, digits and hyphens.
_CLIENT_TOKEN: Final = re.compile(r"[a-zA-Z0-9-]{32,128}")
_TOKEN_COOKIE: Final = "awsiot-tunnel-token"
_MODES: Final = ("source", "destination")
# Origin form: a path of visible ASCII characters (RFC 9112; others are percent-encoded).
_TARGET: Final = re.compile(rb"/[!-~]*")
_BARE_LF: Final = re.compile(rb"(?<!\r)\n")
_INVALID: Final = "Invalid request: "


@dataclasses.dataclass(frozen=True)
class HandshakeRequest:
    """What a syntactically valid handshake asks for."""

    mode: str
    access_token: str
    client_token: str | None
    subprotocol: str


def preflight(head: bytes, *, complete: bool = True) -> str | None:
    """Return a refusal body for a raw request head that ``websockets`` should not see.

    ``head`` is the request up to and including the blank line, or, with ``complete``
    false, what has arrived of it so far: then only what can already be told wrong is
    refused (``None`` means the head may go on).
    """
    if len(head) > MAX_REQUEST_SIZE:
        return f"{_INVALID}The handshake request is larger than {MAX_REQUEST_SIZE} bytes."
    if head.startswith(b"\x16\x03"):
        return f"{_INVALID}Got a TLS handshake on the ws:// port; use the wss:// endpoint."
    bare = _BARE_LF.search(head)
    if bare is not None:
        number = head.count(b"\n", 0, bare.start()) + 1
        return f"{_INVALID}Lines must end with CRLF; line {number} ends with a bare LF."
    line_end = head.find(b"\r\n")
    refusal = _request_line(head if line_end < 0 else head[:line_end], line_end >= 0 or complete)
    if refusal is not None or not complete:
        return refusal
    headers = [line for line in head.split(b"\r\n")[1:] if line]
    if len(headers) > _MAX_HEADER_LINES:
        return f"{_INVALID}The handshake request has more than {_MAX_HEADER_LINES} headers."
    for line in headers:
        name, colon, _ = line.partition(b":")
        if not colon or not name or name != name.strip():
            return f"{_INVALID}Malformed header line {_shown(line, 40)}."
    return _parse(head)


def _shown(data: bytes, limit: int = 80) -> str:
    return repr(data[:limit].decode("latin-1"))


def _request_line(line: bytes, whole: bool) -> str | None:
    """Refusal for a request line (or the start of one, unless ``whole``), else ``None``."""
    method, _, rest = line.partition(b" ")
    target, space, version = rest.partition(b" ")
    if whole:
        valid_start = method == b"GET" and version == b"HTTP/1.1"
    else:  # could still become GET <target> HTTP/1.1
        valid_start = (method == b"GET" or (not rest and b"GET".startswith(method))) and (
            b"HTTP/1.1".startswith(version)
        )
    if not valid_start or b" " in version:
        return f"{_INVALID}The handshake must be an HTTP/1.1 GET request; got {_shown(line)}."
    if (target or space or whole) and not _TARGET.fullmatch(target):
        return (
            f"{_INVALID}The request target must be a path: / then visible ASCII characters "
            f"(percent-encode others); got {_shown(target)}."
        )
    return None


def _parse(head: bytes) -> str | None:
    """Refusal for a head that ``websockets``' request parser rejects, else ``None``."""
    reader = StreamReader()
    reader.feed_data(head)
    reader.feed_eof()
    parser = Request.parse(reader.read_line)
    try:
        next(parser)
    except StopIteration:
        return None
    except Exception as exc:  # its errors say what was wrong: ValueError and others
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(exc))[:160]
        return f"{_INVALID}{text[:1].upper()}{text[1:]}."
    return f"{_INVALID}The request head is incomplete."  # not reached: the head is whole


def _cookie_tokens(headers: Headers) -> list[str]:
    tokens = []
    for header in headers.get_all("Cookie"):
        for pair in header.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip() == _TOKEN_COOKIE:
                tokens.append(value.strip().strip('"'))
    return tokens


def _offered_subprotocols(headers: Headers) -> list[str]:
    offers: list[str] = []
    for header in headers.get_all("Sec-WebSocket-Protocol"):
        try:
            offers.extend(parse_subprotocol(header))
        except InvalidHeader:  # not a token list: shown as given
            offers.append(header)
    return offers


def select_subprotocol(offers: Sequence[str]) -> str | None:
    """The client's first offer that is a tunneling subprotocol (the service echoes it)."""
    for offer in offers:
        if offer in SUBPROTOCOLS:
            return offer
    return None


def _mode(query: str) -> str:
    values = parse_qs(query, keep_blank_values=True).get("local-proxy-mode", [])
    if not values:
        raise Refusal(
            "Invalid local proxy mode: The local-proxy-mode query parameter is required "
            "and must be source or destination."
        )
    if len(values) > 1:
        raise Refusal(
            "Invalid local proxy mode: The local-proxy-mode query parameter must be given "
            f"once; got {len(values)} values."
        )
    if values[0] not in _MODES:
        raise Refusal(
            f"Invalid local proxy mode: {values[0][:40]!r} is not valid; it must be source "
            "or destination."
        )
    return values[0]


def _access_token(headers: Headers) -> str:
    values = [*headers.get_all("access-token"), *_cookie_tokens(headers)]
    if len(values) > 1:
        raise Refusal(
            "Invalid access token: Exactly one access token is allowed, in the access-token "
            f"header or the {_TOKEN_COOKIE} cookie; got {len(values)}."
        )
    if not values or not values[0]:
        raise Refusal(
            "Invalid access token: An access token is required in the access-token header "
            f"or the {_TOKEN_COOKIE} cookie."
        )
    return values[0]


def _client_token(headers: Headers) -> str | None:
    values = headers.get_all("client-token")
    if len(values) > 1:
        raise Refusal(
            f"Invalid client token: At most one client-token header is allowed; got {len(values)}."
        )
    if not values:
        return None
    if not _CLIENT_TOKEN.fullmatch(values[0]):
        raise Refusal(
            "Invalid client token: The client token must be 32 to 128 letters, digits or "
            f"hyphens (^[a-zA-Z0-9-]{{32,128}}$); got {len(values[0])} characters."
        )
    return values[0]


def _subprotocol(headers: Headers) -> str:
    offers = _offered_subprotocols(headers)
    chosen = select_subprotocol(offers)
    if chosen is None:
        got = ", ".join(offers)[:120] if offers else "none"
        raise Refusal(
            "Invalid subprotocol: The Sec-WebSocket-Protocol header must offer one of "
            f"{', '.join(SUBPROTOCOLS)}; got {got}."
        )
    return chosen


def check_request(request: Request) -> HandshakeRequest:
    """Apply checks 3 to 7 of the module docstring; raise :class:`Refusal` on the first."""
    path, _, query = request.path.partition("?")  # origin form, checked by preflight
    if path != "/tunnel":
        raise Refusal(f"Invalid request path: The path must be /tunnel; got {path[:80]!r}.")
    mode = _mode(query)
    access_token = _access_token(request.headers)
    client_token = _client_token(request.headers)
    subprotocol = _subprotocol(request.headers)
    return HandshakeRequest(mode, access_token, client_token, subprotocol)


def request_hints(request: Request) -> tuple[str | None, str | None]:
    """Best-effort ``(mode, access token)`` of any request, to label a refusal."""
    query = request.path.partition("?")[2]
    mode = parse_qs(query).get("local-proxy-mode", [None])[0]
    tokens = [*request.headers.get_all("access-token"), *_cookie_tokens(request.headers)]
    return (
        mode if mode in _MODES else None,
        tokens[0] if len(tokens) == 1 else None,
    )


class ChannelIds:
    """Makes ``channel-id`` values in Netty's long form: ``16hex-8hex-8hex-16hex-8hex``.

    Netty's ``DefaultChannelId``: machine id, process id, sequence, timestamp, random.
    """

    def __init__(self) -> None:
        """Pick a random machine id for this proxy."""
        self._rng = random.Random()
        self._machine = f"{self._rng.getrandbits(64):016x}"
        self._pid = f"{os.getpid() & 0xFFFFFFFF:08x}"
        self._sequence = 0

    def new(self) -> str:
        """A fresh channel id."""
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        stamp = int(real_monotonic() * 1e9) & 0xFFFFFFFFFFFFFFFF
        return (
            f"{self._machine}-{self._pid}-{self._sequence:08x}-{stamp:016x}-"
            f"{self._rng.getrandbits(32):08x}"
        )


def raw_refusal(body: str, channel_id: str) -> bytes:
    """A complete HTTP 400 response, for refusals made before ``websockets`` parses."""
    data = body.encode()
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", "text/plain; charset=utf-8"),
            ("channel-id", channel_id),
        ]
    )
    return Response(400, "Bad Request", headers, data).serialize()
