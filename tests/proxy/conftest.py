"""Fixtures and helpers for the data-plane proxy tests: real sockets on 127.0.0.1."""

from __future__ import annotations

import collections
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.http11 import Response
from websockets.uri import parse_uri

from pytest_securetunnel.protocol import FrameDecoder, TunnelMessage, encode_frame
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

V1, V2, V3 = (f"aws.iot.securetunneling-{n}.0" for n in (1, 2, 3))
CLIENT_TOKEN = "c" * 32


@pytest.fixture
def fake() -> SecureTunnelFake:
    """A fresh control-plane fake."""
    return SecureTunnelFake(seed=7)


@pytest.fixture
def proxy(fake: SecureTunnelFake) -> Iterator[TunnelProxy]:
    """A running proxy over ``fake``; its recorded errors fail the test at teardown."""
    with TunnelProxy(fake) as running:
        yield running


def open_tunnel(fake: SecureTunnelFake, services: Sequence[str] = ("SSH",), **params: Any) -> Any:
    """OpenTunnel through the fake's wire entry point; returns the response dict."""
    if services:
        params.setdefault("destinationConfig", {"services": list(services)})
    return fake.call("OpenTunnel", params)


def describe(fake: SecureTunnelFake, tunnel_id: str) -> Any:
    """DescribeTunnel's ``tunnel``."""
    return fake.call("DescribeTunnel", {"tunnelId": tunnel_id})["tunnel"]


async def connect_client(
    proxy: TunnelProxy,
    token: str,
    mode: str,
    *,
    subprotocol: str = V3,
    tls: bool = False,
    **options: Any,
) -> ClientConnection:
    """A ``websockets`` client connected to the proxy (no compression, no pings)."""
    options.setdefault("compression", None)
    options.setdefault("ping_interval", None)
    headers = {"access-token": token, **options.pop("headers", {})}
    return await connect(
        proxy.url(mode, tls=tls),  # type: ignore[arg-type]
        additional_headers=headers,
        subprotocols=[subprotocol],  # type: ignore[list-item]
        ssl=proxy.ssl_context if tls else None,
        **options,
    )


async def connect_pair(
    proxy: TunnelProxy, opened: Any, subprotocol: str = V3
) -> tuple[ClientConnection, ClientConnection]:
    """Source and destination clients of a tunnel, each past its SERVICE_IDS."""
    src = await connect_client(
        proxy, opened["sourceAccessToken"], "source", subprotocol=subprotocol
    )
    dst = await connect_client(
        proxy, opened["destinationAccessToken"], "destination", subprotocol=subprotocol
    )
    if subprotocol != V1:
        await src.recv()
        await dst.recv()
    return src, dst


async def start_stream(
    src: ClientConnection, dst: ClientConnection, stream_id: int = 1, service: str = "SSH"
) -> None:
    """Source starts a stream; wait until the destination has it."""
    await src.send(encode_frame(TunnelMessage.stream_start(stream_id, service, 1)))
    assert await recv_messages(dst) == [TunnelMessage.stream_start(stream_id, service, 1)]


async def recv_messages(ws: ClientConnection) -> list[TunnelMessage]:
    """The tunneling messages of the next WebSocket message."""
    data = await ws.recv()
    assert isinstance(data, bytes)
    return FrameDecoder().feed(data)


def data(payload: bytes, stream_id: int = 1, service: str = "SSH") -> bytes:
    """A V3 DATA frame on connection 1."""
    return encode_frame(TunnelMessage.data(stream_id, payload, service, 1))


# -- raw HTTP and sans-I/O WebSocket clients -------------------------------------------


def request_bytes(
    *,
    target: str = "/tunnel?local-proxy-mode=source",
    headers: Sequence[tuple[str, str]] = (),
    token: str | None = None,
    subprotocol: str | None = V3,
    websocket: bool = True,
) -> bytes:
    """A handshake request, as raw bytes."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1"]
    if websocket:
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if token is not None:
        lines.append(f"access-token: {token}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_exchange(port: int, request: bytes) -> Response:
    """Send ``request`` on a fresh TCP connection; parse the HTTP response."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = bytearray()
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received and received.startswith(b"HTTP/1.1 101"):
                break
    return parse_response(bytes(received))


def parse_response(raw: bytes) -> Response:
    """Parse an HTTP response with ``websockets``' parser."""
    from websockets.streams import StreamReader

    reader = StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    parser = Response.parse(reader.read_line, reader.read_exact, reader.read_to_eof)
    try:
        next(parser)
    except StopIteration as done:
        response: Response = done.value
        return response
    raise AssertionError(f"incomplete HTTP response: {raw!r}")


class RawClient:
    """A sans-I/O ``websockets`` client over a blocking socket: sees every frame."""

    def __init__(self, port: int, token: str, mode: str, subprotocol: str = V3) -> None:
        """Connect and complete the handshake."""
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._events: collections.deque[Any] = collections.deque()
        uri = parse_uri(f"ws://127.0.0.1:{port}/tunnel?local-proxy-mode={mode}")
        self.protocol = ClientProtocol(uri, subprotocols=[subprotocol])  # type: ignore[list-item]
        request = self.protocol.connect()
        request.headers["access-token"] = token
        self.protocol.send_request(request)
        self.flush()
        event = self.next_event()
        assert isinstance(event, Response), event
        self.response = event

    def flush(self) -> None:
        """Write what the protocol has to send."""
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.sock.sendall(chunk)

    def next_event(self) -> Response | Frame:
        """The next event (handshake response or frame), reading as needed."""
        while not self._events:
            chunk = self.sock.recv(65536)
            if chunk:
                self.protocol.receive_data(chunk)
            else:
                self.protocol.receive_eof()
            self.flush()
            self._events.extend(self.protocol.events_received())
            if not chunk and not self._events:
                raise EOFError("the proxy closed the connection")
        event: Response | Frame = self._events.popleft()
        return event

    def next_frame(self) -> Frame:
        """The next frame."""
        frame = self.next_event()
        assert isinstance(frame, Frame), frame
        return frame

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()
