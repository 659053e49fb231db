"""``SyncLocalProxy`` and ``SyncEchoPeer``: the local proxy and echo peer on threads.

Both run on a :class:`SyncTunnelClient` (``websockets.sync``). The local proxy carries out
:class:`~pytest_securetunnel.protocol.LocalProxyPolicy` with plain threads: one that
dispatches tunnel messages, one that accepts local connections (source mode) and one per
local TCP connection that forwards what the application sends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import selectors
import socket
import ssl as ssl_module
import threading
from collections.abc import Callable
from typing import Any

from .._lifecycle import Lifecycle
from ..protocol import (
    MAX_PAYLOAD_SIZE,
    ClientMode,
    ConnectLocal,
    EndLocal,
    Fatal,
    Ignored,
    LocalLink,
    LocalProxyAction,
    LocalProxyPolicy,
    ProtocolVersion,
    SendMessage,
    TunnelMessage,
    WriteLocal,
)
from ._client_base import DEFAULT_TIMEOUT
from ._echo import echo_of
from ._errors import LocalProxyError, TunnelClosedError
from ._mapping import ServiceMapping, ServiceTarget, plan_services
from ._records import MessageRecord
from ._sync_client import SyncTunnelClient

__all__ = ["SyncEchoPeer", "SyncLocalProxy"]

_log = logging.getLogger("pytest_securetunnel.client")


class SyncEchoPeer(Lifecycle["SyncEchoPeer"]):
    """An :class:`EchoPeer` for synchronous code: a thread echoes every DATA back.

    Echoes on the same stream, service id and connection id; stale DATA is not echoed.
    :meth:`stop` (or leaving ``with``) closes the client and joins the thread.
    """

    def __init__(self, client: SyncTunnelClient) -> None:
        """Wrap a connected client; :meth:`start` begins echoing (or use :meth:`connect`)."""
        self.client = client
        """The tunnel client that echoes."""
        self.echoed_messages = 0
        """How many DATA messages were echoed."""
        self.echoed_bytes = 0
        """How many payload bytes were echoed."""
        self._thread = threading.Thread(target=self._echo, name="SyncEchoPeer", daemon=True)

    @classmethod
    def connect(
        cls,
        endpoint: str,
        token: str | None,
        mode: ClientMode | str = ClientMode.DESTINATION,
        **options: Any,
    ) -> SyncEchoPeer:
        """Connect and start echoing; ``options`` as for :meth:`TunnelClient.connect`."""
        return cls(SyncTunnelClient.connect(endpoint, token, mode, **options)).start()

    def start(self) -> SyncEchoPeer:
        """Start echoing in a thread; idempotent."""
        if self._thread.ident is None:
            self._thread.start()
        return self

    def _echo(self) -> None:
        for message in self.client:
            if (echo := echo_of(message)) is None:
                continue
            # Counted first: the peer may see the echo before send_message returns.
            self.echoed_messages += 1
            self.echoed_bytes += len(message.payload)
            try:
                self.client.send_message(echo)
            except TunnelClosedError:
                return

    def stop(self) -> None:
        """Close the client and join the echo thread; idempotent (``with`` stops too)."""
        self.client.close()
        if self._thread.ident is not None:
            self._thread.join()


class _Local:
    """A local TCP connection carried over the tunnel as :attr:`link` says.

    Only its forwarding thread closes the socket; others write to it or shut it down,
    which ends that thread.
    """

    def __init__(self, link: LocalLink, sock: socket.socket) -> None:
        self.link = link
        self.sock = sock
        self._lock = threading.Lock()
        self._closed = False

    def write(self, payload: bytes) -> None:
        """Write ``payload`` to the application (ignored once the socket failed or closed)."""
        with self._lock:
            if not self._closed:
                with contextlib.suppress(OSError):
                    self.sock.sendall(payload)

    def shut(self) -> None:
        """End the connection: what was written is flushed, the forwarding thread ends."""
        if not self._closed:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.sock.close()


@dataclasses.dataclass(eq=False)
class _Service:
    target: ServiceTarget
    port: int
    listener: socket.socket | None = None
    #: Held while a STREAM_START or CONNECTION_START goes out, so ids go out in order.
    start_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    #: V1/V2: one local connection at a time per service.
    exclusive: threading.Lock = dataclasses.field(default_factory=threading.Lock)


class SyncLocalProxy(Lifecycle["SyncLocalProxy"]):
    """A :class:`LocalProxy` for synchronous code, on threads and ``websockets.sync``.

    Same arguments and semantics as :class:`LocalProxy`; use ``with SyncLocalProxy(...) as
    proxy:`` or :meth:`start` / :meth:`stop`. Stopping closes every socket and joins every
    thread. The tunnel client is :attr:`client`, a :class:`SyncTunnelClient`.
    """

    def __init__(
        self,
        endpoint: str,
        token: str,
        mode: ClientMode | str,
        services: ServiceMapping | None = None,
        *,
        version: ProtocolVersion | int | str = ProtocolVersion.V3,
        client_token: str | None = None,
        ssl: ssl_module.SSLContext | None = None,
        bind_host: str = "127.0.0.1",
        connect_timeout: float = 5.0,
        open_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Configure the proxy; :meth:`start` connects it."""
        self.mode = ClientMode(mode)
        """The proxy's mode."""
        self.client: SyncTunnelClient | None = None
        """The tunnel client, once started."""
        self.error: Exception | None = None
        """The fatal error that ended the proxy, if any."""
        self._connect_args = (endpoint, token, self.mode)
        self._connect_options: dict[str, Any] = {
            "version": version,
            "client_token": client_token,
            "ssl": ssl,
            "open_timeout": open_timeout,
        }
        self._services_spec = services
        self._bind_host = bind_host
        self._connect_timeout = connect_timeout
        self._services: dict[str, _Service] = {}
        self._policy: LocalProxyPolicy | None = None
        self._lock = threading.Lock()  # around the policy and _locals
        self._locals: dict[LocalLink, _Local] = {}
        self._threads: list[threading.Thread] = []
        self._dispatcher: threading.Thread | None = None
        self._wake_accept: socket.socket | None = None
        self._started = self._stopped = False

    # -- state ---------------------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        """Source mode: service id -> bound local port (``""`` for a V1 service)."""
        return {name: service.port for name, service in self._services.items()}

    @property
    def port(self) -> int:
        """Source mode: the bound port of the only service."""
        if len(self._services) != 1:
            raise LookupError(f"the proxy has {len(self._services)} services: use .ports")
        return next(iter(self._services.values())).port

    @property
    def open_connections(self) -> int:
        """Number of local TCP connections currently carried by the tunnel."""
        return 0 if self._policy is None else self._policy.open_links

    @property
    def closed(self) -> bool:
        """Whether the proxy has ended (stopped, or its WebSocket closed)."""
        return self._dispatcher is not None and not self._dispatcher.is_alive()

    @property
    def messages(self) -> list[MessageRecord]:
        """The tunnel messages sent and received so far."""
        return [] if self.client is None else self.client.messages

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> SyncLocalProxy:
        """Connect, check the mapping against SERVICE_IDS and start forwarding.

        Raises :class:`LocalProxyError` for a mapping that does not fit the tunnel, and
        whatever :meth:`TunnelClient.connect` raises.
        """
        if self._started:
            raise RuntimeError("the SyncLocalProxy was already started")
        self._started = True
        client = self.client = SyncTunnelClient.connect(
            *self._connect_args, **self._connect_options
        )
        policy = self._policy = LocalProxyPolicy(self.mode, client.version)
        try:
            service_ids = client.service_ids if client.version.has_service_ids else None
            for target in plan_services(
                self.mode, self._services_spec, service_ids, self._bind_host
            ):
                service = self._services[target.name] = _Service(target, target.port)
                policy.add_service(target.name, target.wire_id)
                if self.mode is ClientMode.SOURCE:
                    self._listen(service)
            if self.mode is ClientMode.SOURCE:
                self._start_accepting()
            self._dispatcher = self._spawn(self._dispatch, "dispatch")
        except BaseException:
            self.stop()
            raise
        return self

    def _listen(self, service: _Service) -> None:
        service.listener = socket.create_server((service.target.host, service.target.port))
        service.port = service.listener.getsockname()[1]
        # localproxy log marker.
        _log.info("Listening for new connection on port %d (%r)", service.port, service.target.name)

    def stop(self) -> None:
        """Stop listening, close the WebSocket and every local connection, join every
        thread; idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        self._stop_accepting()
        with self._lock:
            locals_ = list(self._locals.values())
        for local in locals_:
            local.shut()
        if self.client is not None:
            self.client.close()
        # Joined in start order: once the acceptor and the dispatcher have ended, no
        # thread starts.
        while True:
            with self._lock:
                if not self._threads:
                    break
                thread = self._threads.pop(0)
            thread.join()
        self._close_listeners()

    def wait_closed(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until the proxy has ended (its WebSocket closed)."""
        if self._dispatcher is None:
            raise RuntimeError("the SyncLocalProxy is not started")
        self._dispatcher.join(timeout)
        if self._dispatcher.is_alive():
            raise TimeoutError(f"the SyncLocalProxy did not end within {timeout} s")

    def _spawn(self, target: Callable[..., None], what: str, *args: Any) -> threading.Thread:
        thread = threading.Thread(
            target=target, args=args, name=f"SyncLocalProxy {self.mode.value} {what}", daemon=True
        )
        with self._lock:
            self._threads = [known for known in self._threads if known.is_alive()]
            self._threads.append(thread)
        thread.start()
        return thread

    # -- local connections ---------------------------------------------------------------

    def _start_accepting(self) -> None:
        wake, self._wake_accept = socket.socketpair()
        self._spawn(self._accept_loop, "accept", wake)

    def _stop_accepting(self) -> None:
        with self._lock:
            wake, self._wake_accept = self._wake_accept, None
        if wake is not None:
            with wake, contextlib.suppress(OSError):
                wake.send(b"x")

    def _accept_loop(self, wake: socket.socket) -> None:
        with selectors.DefaultSelector() as selector, wake:
            selector.register(wake, selectors.EVENT_READ, None)
            for service in self._services.values():
                assert service.listener is not None
                selector.register(service.listener, selectors.EVENT_READ, service)
            try:
                while True:
                    for key, _ in selector.select():
                        if key.data is None:
                            return  # stopped, or the tunnel ended
                        try:
                            sock, _ = key.data.listener.accept()
                        except OSError:
                            continue
                        self._spawn(self._serve_source, "connection", key.data, sock)
            finally:
                self._close_listeners()

    def _close_listeners(self) -> None:
        for service in self._services.values():
            if service.listener is not None:
                service.listener.close()

    def _serve_source(self, service: _Service, sock: socket.socket) -> None:
        policy = self._require_policy()
        name, wire_id = service.target.name, service.target.wire_id
        with self._lock:
            one_at_a_time = not policy.uses_connection_ids(name)
        # localproxy V1/V2: one TCP connection per service; the next one waits.
        with service.exclusive if one_at_a_time else contextlib.nullcontext():
            if self.closed or self._stopped:
                sock.close()
                return
            with service.start_lock:
                with self._lock:
                    client = self._require_client()
                    link, start = policy.open_link(name, client.active_stream_id(wire_id))
                    local = self._locals[link] = _Local(link, sock)
                if not self._send(start):
                    self._end(link)
                    local.close()
                    return
            self._forward(local)

    def _forward(self, local: _Local) -> None:
        """Forward what the local application sends until it closes, then reset."""
        link = local.link
        try:
            while not link.ended:
                try:
                    payload = local.sock.recv(MAX_PAYLOAD_SIZE)
                except OSError:
                    payload = b""
                if not payload or not self._send(link.data_message(payload)):
                    break
            reset = self._end(link)
            if reset is not None:
                self._send(reset)
        finally:
            self._end(link)
            local.close()

    def _end(self, link: LocalLink) -> TunnelMessage | None:
        """End a link on this side; the message telling the peer, if it was live."""
        with self._lock:
            self._locals.pop(link, None)
            return self._require_policy().end(link)

    def _send(self, message: TunnelMessage) -> bool:
        try:
            self._require_client().send_message(message)
        except TunnelClosedError:
            return False
        return True

    def _connect_local(self, request: ConnectLocal) -> None:
        target = self._services[request.service].target
        policy = self._require_policy()
        try:
            sock = socket.create_connection((target.host, target.port), self._connect_timeout)
        except OSError as exc:
            _log.info("Cannot connect to %s:%d: %s", target.host, target.port, exc)
            with self._lock:
                failed = policy.connect_failed(request)
            self._send(failed)
            return
        sock.settimeout(None)
        with self._lock:
            link = policy.connected(request)
            local = self._locals[link] = _Local(link, sock)
        _log.info("Connected to %s:%d", target.host, target.port)  # localproxy log marker
        self._spawn(self._forward, "connection", local)

    # -- tunnel messages -----------------------------------------------------------------

    def _dispatch(self) -> None:
        client = self._require_client()
        policy = self._require_policy()
        try:
            for message in client:
                with self._lock:
                    actions = policy.receive(message)
                for action in actions:
                    self._carry_out(action)
        except Exception as exc:  # LocalProxyError, or a bug: end the proxy either way
            self.error = exc
            _log.error("SyncLocalProxy stops: %s", exc)
            client.close(1000, "")
        finally:
            # localproxy: on close it resets every local TCP connection and exits.
            self._stop_accepting()
            with self._lock:
                ended = [self._locals.pop(link, None) for link in policy.end_all()]
            for local in ended:
                if local is not None:
                    local.shut()

    def _carry_out(self, action: LocalProxyAction) -> None:
        if isinstance(action, WriteLocal):
            local = self._locals.get(action.link)
            if local is not None:
                local.write(action.payload)
        elif isinstance(action, EndLocal):
            with self._lock:
                ended = self._locals.pop(action.link, None)
            if ended is not None:
                ended.shut()
        elif isinstance(action, SendMessage):
            self._send(action.message)
        elif isinstance(action, ConnectLocal):
            self._connect_local(action)
        elif isinstance(action, Ignored):
            _log.warning("Ignoring %r: %s", action.message, action.reason)
        elif isinstance(action, Fatal):
            raise LocalProxyError(action.reason)

    def _require_client(self) -> SyncTunnelClient:
        if self.client is None:
            raise RuntimeError("the SyncLocalProxy is not started")
        return self.client

    def _require_policy(self) -> LocalProxyPolicy:
        if self._policy is None:
            raise RuntimeError("the SyncLocalProxy is not started")
        return self._policy
