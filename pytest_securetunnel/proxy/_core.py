"""The data plane on the proxy's event loop: servers, handshakes, connections, closes.

A thin adapter: the protocol core (``TunnelConnection``) validates what clients send and
tracks streams; the control-plane fake admits tokens and keeps connection states; each
tunnel's :class:`~._relay.TunnelRelay` moves messages between its two connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Final, cast

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from pytest_securetunnel.protocol import MAX_WEBSOCKET_FRAME_SIZE, TunnelConnection
from pytest_securetunnel.service import Refusal, SecureTunnelFake, Tunnel

from ._connection import TunnelServerConnection
from ._events import EventLog
from ._faults import Faults
from ._handshake import (
    ChannelIds,
    HandshakeRequest,
    check_request,
    raw_refusal,
    request_hints,
    select_subprotocol,
)
from ._peer import Delivery, Peer
from ._relay import CLOSED, EXPIRED, INTERNAL_CLOSE, TunnelRelay, close_reason
from ._ws_internals import protocol_of, serving, transport_of

__all__ = ["Admission", "ProxyCore", "close_reason"]

#: Seconds between ``check_deadlines`` calls, on the loop's real monotonic clock.
DEADLINE_PERIOD: Final = 0.05
# A generous listen backlog: asyncio's default of 100 made 400 simultaneous connects
# take over a second.
BACKLOG: Final = max(socket.SOMAXCONN, 4096)
WRITE_LIMIT: Final = 2**16
_INTERNAL: Final = (
    "Internal error: pytest-securetunnel's proxy failed; TunnelProxy.check() raises the error."
)


@dataclasses.dataclass(frozen=True)
class Admission:
    """A handshake the fake admitted: its tunnel's relay and what it asked for."""

    relay: TunnelRelay
    request: HandshakeRequest


class ProxyCore:
    """Everything that runs on the proxy's loop, shared by its ``ws`` and ``wss`` servers."""

    def __init__(
        self,
        fake: SecureTunnelFake,
        events: EventLog,
        *,
        delivery: Delivery,
        on_error: Callable[[BaseException], None],
    ) -> None:
        """Serve ``fake``'s tunnels, logging to ``events``; ``on_error`` records bugs."""
        self.fake = fake
        self.events = events
        self.relays: dict[str, TunnelRelay] = {}
        self.faults = Faults(self.relays, events, delivery)
        self.connections: set[TunnelServerConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.record_error = on_error
        self.loop: asyncio.AbstractEventLoop | None = None
        self._servers: list[Server] = []
        #: Local port -> the region whose data endpoint it is (one pair of ports a region).
        self.port_regions: dict[int, str] = {}
        self._serve_options: dict[str, Any] = {}
        self._tls: ssl.SSLContext | None = None
        # Sockets bound for a region whose server has not started yet (closed at shutdown).
        self._unserved: list[socket.socket] = []
        self._regions_lock = threading.Lock()
        self._channel_ids = ChannelIds()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._remove_listener: Callable[[], None] | None = None
        self.connection_class: type[TunnelServerConnection] = type(
            "BoundTunnelServerConnection", (TunnelServerConnection,), {"owner": self}
        )

    # -- lifecycle -------------------------------------------------------------------

    async def listen(
        self, tls: ssl.SSLContext | None, *, deflate: bool, close_timeout: float, region: str
    ) -> tuple[int, int | None]:
        """Serve ``region``'s ``ws://`` (and ``wss://`` with ``tls``) on ephemeral ports of
        127.0.0.1.

        Returns the two ports; starts listening to the fake and checking its deadlines.
        """
        options: dict[str, Any] = {
            "process_request": self.process_request,
            "process_response": self.process_response,
            "select_subprotocol": self.select_subprotocol,
            "compression": "deflate" if deflate else None,  # only when a client offers it
            "server_header": None,
            "ping_interval": None,  # the service normally does not ping (protocol guides)
            "ping_timeout": None,
            "close_timeout": close_timeout,
            # The limit is per WebSocket frame (larger closes 1009); a message may be
            # sent in any number of frames, which go to the relay one by one.
            "max_size": (None, MAX_WEBSOCKET_FRAME_SIZE),
            "write_limit": WRITE_LIMIT,
            "create_connection": self.connection_class,
            "backlog": BACKLOG,
        }
        servers = [await serve(self.handler, "127.0.0.1", 0, **options)]
        try:
            if tls is not None:
                servers.append(await serve(self.handler, "127.0.0.1", 0, ssl=tls, **options))
        except BaseException:
            for server in servers:
                server.close()
                await server.wait_closed()
            raise
        self._servers = servers
        self._serve_options, self._tls = options, tls
        for server in servers:
            self.port_regions[server.sockets[0].getsockname()[1]] = region
        loop = self.loop = asyncio.get_running_loop()
        self._remove_listener = self.fake.add_listener(self._on_fake_event)
        self._tick_handle = loop.call_later(DEADLINE_PERIOD, self._tick)
        ports = [server.sockets[0].getsockname()[1] for server in servers]
        return ports[0], ports[1] if tls is not None else None

    def add_region(self, region: str) -> tuple[int, int | None]:
        """Listen for ``region``'s handshakes on new ephemeral ports; return them.

        Callable from any thread: the ports are bound and listening on return (clients
        queue in the backlog), and the servers start on the loop right after.
        """
        with self._regions_lock:
            if self.stopping or self.loop is None:
                raise RuntimeError("TunnelProxy is not running: start() it or use `with`")
            socks = [_listening_socket() for _ in range(1 if self._tls is None else 2)]
            ports = [sock.getsockname()[1] for sock in socks]
            for port in ports:
                self.port_regions[port] = region
            self._unserved.extend(socks)
            self.loop.call_soon_threadsafe(self._serve_region, socks)
        return ports[0], ports[1] if len(ports) > 1 else None

    def _serve_region(self, socks: list[socket.socket]) -> None:
        with self._regions_lock:
            if self.stopping:
                return  # shutdown closes the sockets
            for sock in socks:
                self._unserved.remove(sock)
        for sock, tls in zip(socks, (None, self._tls)[: len(socks)], strict=True):
            self.spawn(self._serve_socket(sock, tls))

    async def _serve_socket(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        try:
            server = await serve(self.handler, sock=sock, ssl=tls, **self._serve_options)
        except BaseException:
            sock.close()
            raise
        self._servers.append(server)
        if self.stopping:
            server.close(close_connections=False)

    async def shutdown(self, grace: float) -> None:
        """Stop listening, close every connection (1001) and wait for the servers."""
        with self._regions_lock:
            self.stopping = True
            unserved, self._unserved = self._unserved, []
        for sock in unserved:
            sock.close()
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        for server in self._servers:
            server.close(close_connections=False)
        await self._close_all(grace)
        for server in self._servers:
            await server.wait_closed()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a tracked task (awaited or cancelled at stop)."""
        assert self.loop is not None
        task = self.loop.create_task(self._guard(coro))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except Exception as exc:
            self.record_error(exc)

    def _tick(self) -> None:
        # docs/fidelity.md: expiry closes live connections; the fake applies it when asked.
        try:
            self.fake.check_deadlines()
        except Exception as exc:
            self.record_error(exc)
        if not self.stopping and self.loop is not None:
            self._tick_handle = self.loop.call_later(DEADLINE_PERIOD, self._tick)

    async def _close_all(self, grace: float) -> None:
        # Clients answer a close frame within milliseconds; the rest are aborted after
        # ``grace`` so that stopping stays fast.
        for conn in list(self.connections):
            if not conn.handler_started:
                transport_of(conn).abort()  # still in the opening handshake
        for relay in list(self.relays.values()):
            for peer in list(relay.peers.values()):
                self.spawn(self.close(peer, 1001, "Proxy stopped"))
        if self.tasks:
            _, late = await asyncio.wait(list(self.tasks), timeout=grace)
            for task in late:
                task.cancel()
        for conn in list(self.connections):
            transport_of(conn).abort()
        if self.tasks:
            await asyncio.wait(list(self.tasks))

    # -- handshake ---------------------------------------------------------------------

    def new_channel_id(self) -> str:
        """A fresh ``channel-id`` for a connection."""
        return self._channel_ids.new()

    def refuse_raw(self, conn: TunnelServerConnection, body: str) -> None:
        """Refuse a request ``websockets`` should not parse: 400, then close."""
        self.events.record("refused", channel_id=conn.channel_id, code=400, reason=body)
        transport_of(conn).write(raw_refusal(body, conn.channel_id))
        transport_of(conn).close()

    def select_subprotocol(self, connection: ServerConnection, offers: Iterable[str]) -> str | None:
        """The client's first tunneling subprotocol (checked before, in ``check_request``)."""
        chosen: Any = select_subprotocol(list(offers))  # websockets' Subprotocol is a str
        return cast("str | None", chosen)

    def process_request(self, connection: ServerConnection, request: Request) -> Response:
        """Check the handshake and admit it with the fake; see ``_handshake`` for the order."""
        conn = cast(TunnelServerConnection, connection)
        try:
            if self.stopping or not serving(connection):
                raise Refusal("Service unavailable: The proxy is stopping.")
            checked = check_request(request)
            response = protocol_of(connection).accept(request)
            if response.status_code != 101:
                text = response.body.decode(errors="replace").strip()
                text = text.removeprefix("Failed to open a WebSocket connection: ").split("\n")[0]
                raise Refusal(f"Invalid WebSocket upgrade request: {text[:1].upper()}{text[1:]}")
            tunnel = self.fake.authorize_connection(
                checked.access_token,
                checked.mode,
                checked.client_token,
                region=self.port_regions.get(conn.local_address[1]),
            )
        except Refusal as refusal:
            return self._refuse(conn, refusal, request)
        except Exception as exc:
            self.record_error(exc)
            return self._refuse(conn, Refusal(_INTERNAL), request)
        relay = self.relays.get(tunnel.tunnel_id)
        if relay is None:
            relay = self.relays[tunnel.tunnel_id] = TunnelRelay(tunnel, self)
        relay.admitted(checked.mode)
        conn.admission = Admission(relay, checked)
        return response

    def _refuse(self, conn: TunnelServerConnection, refusal: Refusal, request: Request) -> Response:
        # docs/fidelity.md: every refusal is HTTP 400, never 5xx (clients retry 5xx forever).
        status = refusal.status if 400 <= refusal.status < 500 else 400
        response = conn.respond(status, refusal.body)
        for name, value in refusal.headers.items():
            response.headers[name] = value
        mode, token = request_hints(request)
        record = None if token is None else self.fake.token(token)
        self.events.record(
            "refused",
            tunnel_id=None if record is None else record.tunnel_id,
            mode=mode,
            channel_id=conn.channel_id,
            code=status,
            reason=refusal.body,
        )
        return response

    def process_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        """Add ``channel-id`` to every response (localproxy logs it as the session id)."""
        response.headers["channel-id"] = cast(TunnelServerConnection, connection).channel_id

    def release_admission(self, conn: TunnelServerConnection) -> None:
        """An admitted handshake never opened: release its hold on the connection state."""
        assert isinstance(conn.admission, Admission)
        relay, mode = conn.admission.relay, conn.admission.request.mode
        relay.admission_dropped(mode)
        self._forget_if_idle(relay)

    def _forget_if_idle(self, relay: TunnelRelay) -> None:
        """Drop ``relay`` once it holds nothing, unless a newer relay has its tunnel now."""
        if relay.idle and self.relays.get(relay.tunnel_id) is relay:
            del self.relays[relay.tunnel_id]

    # -- connections -------------------------------------------------------------------

    async def handler(self, ws: ServerConnection) -> None:
        """Serve one open tunnel connection until it closes."""
        conn = cast(TunnelServerConnection, ws)
        conn.handler_started = True
        assert isinstance(conn.admission, Admission)
        relay, request = conn.admission.relay, conn.admission.request
        tunnel = relay.tunnel
        peer = Peer(
            conn,
            tunnel.tunnel_id,
            TunnelConnection(request.mode, request.subprotocol, tunnel.services),
            request.access_token,
            self.events,
            self.faults.delivery_for(tunnel.tunnel_id, request.mode),
            self.record_error,
        )
        self.events.record(
            "connected",
            tunnel_id=tunnel.tunnel_id,
            mode=request.mode,
            channel_id=conn.channel_id,
            reason=request.subprotocol,
        )
        try:
            # Synchronous up to the first await, so no frame can arrive in between.
            relay.open(peer)
            conn.attach(
                functools.partial(relay.on_data, peer), functools.partial(relay.on_text, peer)
            )
            await conn.wait_closed()  # every data frame goes to the relay as it arrives
        except Exception as exc:
            self.record_error(exc)
            relay.close(peer, 1011, INTERNAL_CLOSE)
        finally:
            await self._finish(relay, peer)

    async def _finish(self, relay: TunnelRelay, peer: Peer) -> None:
        peer.ws.sink = None
        relay.detach(peer, *_first_close(peer.ws))
        self._forget_if_idle(relay)
        writer = peer.stop_writer()
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)
        await peer.ws.wait_closed()
        code, reason = _first_close(peer.ws)
        self.events.record(
            "disconnected",
            tunnel_id=peer.tunnel_id,
            mode=peer.mode,
            channel_id=peer.channel_id,
            code=code,
            reason=reason,
        )

    async def close(self, peer: Peer, code: int, reason: str) -> None:
        """Close ``peer``'s WebSocket with ``code``/``reason`` (once) and log it."""
        if peer.closing:
            return
        peer.closing = True
        reason = close_reason(reason)
        self.events.record(
            "closing",
            tunnel_id=peer.tunnel_id,
            mode=peer.mode,
            channel_id=peer.channel_id,
            code=code,
            reason=reason,
        )
        await peer.ws.close(code, reason)

    # -- control-plane events ---------------------------------------------------------

    def _on_fake_event(self, event: str, tunnel: Tunnel, mode: str | None) -> None:
        # Called on any thread, under the fake's lock: hand off, never block.
        expired = tunnel.closed_at is None
        # The tokens valid when the fake announced a rotation: by the time the loop
        # runs, a later call (CloseTunnel with delete) may have forgotten them all.
        valid = frozenset(
            token
            for token in (tunnel.source_token, tunnel.destination_token)
            if (record := self.fake.token(token)) is not None and not record.revoked
        )
        loop = self.loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the proxy is stopping
                loop.call_soon_threadsafe(
                    self._fake_event, event, tunnel.tunnel_id, mode, expired, valid
                )

    def _fake_event(
        self, event: str, tunnel_id: str, mode: str | None, expired: bool, valid: frozenset[str]
    ) -> None:
        relay = self.relays.get(tunnel_id)
        if relay is None or self.stopping:
            return
        if event == "closed":
            # docs/fidelity.md: CloseTunnel and expiry close both sides with 1000.
            reason = EXPIRED if expired else CLOSED
            delay = self.faults.close_delay_for(tunnel_id)
            if delay > 0:
                self.faults.note_close_delay(tunnel_id, delay)
                self.spawn(self._close_later(relay, delay, reason))
                return
            relay.close_all(reason)
        elif event == "deleted":
            relay.deleted()
        elif event == "revoked" and mode is not None:
            relay.tokens_rotated(valid)

    async def _close_later(self, relay: TunnelRelay, delay: float, reason: str) -> None:
        # The close-delay fault: the connections stay open, and relay data, for ``delay``
        # seconds of real time after the tunnel became CLOSED; new handshakes are refused.
        await asyncio.sleep(delay)
        relay.close_all(reason)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _first_close(ws: ServerConnection) -> tuple[int, str]:
    """Code and reason of the close frame that started the closing handshake (1006 if none)."""
    protocol = protocol_of(ws)
    if protocol.close_rcvd_then_sent:
        first = protocol.close_rcvd
    else:
        first = protocol.close_sent or protocol.close_rcvd
    return (1006, "") if first is None else (first.code, first.reason)
