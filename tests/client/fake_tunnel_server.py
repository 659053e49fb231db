"""A minimal tunneling WebSocket server for the client tests.

It checks the handshake the way the service documents it (path, query, one token, a
supported subprotocol), sends SERVICE_IDS first on V2/V3, and relays every message between
one source and one destination, one tunnel frame per WebSocket message. Tests can refuse
handshakes, hold SERVICE_IDS back, inject messages and close clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http
import re
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from pytest_securetunnel.protocol import (
    SUBPROTOCOLS,
    FrameDecoder,
    ProtocolVersion,
    TunnelMessage,
    encode_frame,
)

T = TypeVar("T")
CHANNEL_ID = "0ea2b3fffe6adc0e-0000125a-00005adb-c2f218c35b921565-17c807e1"
_CLIENT_TOKEN = re.compile(r"^[a-zA-Z0-9-]{32,128}$")


@dataclasses.dataclass
class Handshake:
    """What a client sent in its upgrade request."""

    path: str
    headers: Headers


@dataclasses.dataclass
class Refusal:
    """An HTTP response that refuses every handshake."""

    status: int = 400
    body: str = (
        "Invalid access token: The access token was previously used and can not be used again."
    )
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class FakeTunnelServer:
    """A one-tunnel relay on ``ws://127.0.0.1:<ephemeral port>``."""

    def __init__(
        self,
        services: Iterable[str] = ("SSH",),
        *,
        source_token: str = "source-token",
        destination_token: str = "destination-token",
    ) -> None:
        self.services = tuple(services)
        self.tokens = {"source": source_token, "destination": destination_token}
        self.handshakes: list[Handshake] = []
        self.received: list[tuple[str, TunnelMessage]] = []
        self.connections: dict[str, ServerConnection] = {}
        self.versions: dict[str, ProtocolVersion] = {}
        self.refusal: Refusal | None = None
        self.answer_subprotocol = True
        self.relay = True
        self.service_ids_gate: asyncio.Event | None = None
        self._server: Server | None = None
        self._changed = asyncio.Event()

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}"

    async def start(self) -> FakeTunnelServer:
        self._server = await serve(
            self._handler,
            "127.0.0.1",
            0,
            process_request=self._process_request,
            process_response=self._process_response,
            select_subprotocol=self._select_subprotocol,
            compression=None,
            max_size=131076,
        )
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def __aenter__(self) -> FakeTunnelServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- handshake -------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        self.handshakes.append(Handshake(request.path, request.headers))
        self._notify()
        if self.refusal is not None:
            response = connection.respond(self.refusal.status, self.refusal.body)
            response.headers.update(self.refusal.headers)
            return response
        url = urlsplit(request.path)
        if url.path != "/tunnel":
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "Invalid path")
        modes = parse_qs(url.query).get("local-proxy-mode", [])
        if modes not in (["source"], ["destination"]):
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "Invalid local-proxy-mode")
        tokens = request.headers.get_all("access-token")
        for cookie in request.headers.get_all("Cookie"):
            for part in cookie.split(";"):
                name, _, value = part.strip().partition("=")
                if name == "awsiot-tunnel-token":
                    tokens.append(value)
        if tokens != [self.tokens[modes[0]]]:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "Invalid access token")
        client_tokens = request.headers.get_all("client-token")
        if client_tokens and (len(client_tokens) > 1 or not _CLIENT_TOKEN.match(client_tokens[0])):
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "Invalid client token")
        offered = ", ".join(request.headers.get_all("Sec-WebSocket-Protocol"))
        if not any(p.strip() in SUBPROTOCOLS for p in offered.split(",")):
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "Unsupported subprotocol")
        return None

    def _select_subprotocol(
        self, connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        if not self.answer_subprotocol:
            return None
        return next((p for p in subprotocols if p in SUBPROTOCOLS), None)

    def _process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        if "channel-id" not in response.headers:
            response.headers["channel-id"] = CHANNEL_ID

    # -- data ------------------------------------------------------------------------------

    async def _handler(self, websocket: ServerConnection) -> None:
        assert websocket.request is not None
        mode = parse_qs(urlsplit(websocket.request.path).query)["local-proxy-mode"][0]
        version = (
            ProtocolVersion.from_subprotocol(websocket.subprotocol)
            if websocket.subprotocol
            else ProtocolVersion.V3
        )
        previous = self.connections.get(mode)
        if previous is not None:
            await previous.close(1008, "Connection is replaced by another connection")
        self.connections[mode] = websocket
        self.versions[mode] = version
        try:
            if version.has_service_ids:
                if self.service_ids_gate is not None:
                    await self.service_ids_gate.wait()
                await websocket.send(encode_frame(TunnelMessage.service_ids(self.services)))
            self._notify()
            decoder = FrameDecoder()
            async for data in websocket:
                assert isinstance(data, bytes)
                for message in decoder.feed(data):
                    self.received.append((mode, message))
                    self._notify()
                    peer = self.connections.get(_other(mode))
                    if self.relay and peer is not None:
                        await peer.send(encode_frame(message))
        finally:
            if self.connections.get(mode) is websocket:
                del self.connections[mode]
            self._notify()

    async def send(self, mode: str, *messages: TunnelMessage, together: bool = False) -> None:
        """Send messages to the client of ``mode`` (in one WebSocket message if ``together``)."""
        frames = [encode_frame(message) for message in messages]
        if together:
            frames = [b"".join(frames)]
        for frame in frames:
            await self.connections[mode].send(frame)

    async def close_client(self, mode: str, code: int = 1000, reason: str = "") -> None:
        await self.connections[mode].close(code, reason)

    # -- waiting ---------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, check: Callable[[], T | None], timeout: float = 5.0) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (result := check()) is None:
            await asyncio.wait_for(self._changed.wait(), max(deadline - loop.time(), 0))
        return result

    async def wait_connected(self, mode: str, timeout: float = 5.0) -> ServerConnection:
        return await self.wait_until(lambda: self.connections.get(mode), timeout)

    async def wait_received(
        self, count: int, mode: str | None = None, timeout: float = 5.0
    ) -> list[TunnelMessage]:
        """Wait until ``count`` messages came from ``mode`` (any if ``None``); return them."""

        def check() -> list[TunnelMessage] | None:
            found = [m for sender, m in self.received if mode is None or sender == mode]
            return found if len(found) >= count else None

        return await self.wait_until(check, timeout)


def _other(mode: str) -> str:
    return "destination" if mode == "source" else "source"
