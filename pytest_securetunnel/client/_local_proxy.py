"""``LocalProxy``: TCP port forwarding over a tunnel, with the reference local proxy's semantics."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl as ssl_module
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from ..protocol import (
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
from ._errors import LocalProxyError, TunnelClosedError
from ._links import Link, Service
from ._mapping import ServiceMapping, plan_services
from ._tunnel_client import DEFAULT_TIMEOUT, TunnelClient

__all__ = ["LocalProxy"]

_log = logging.getLogger("pytest_securetunnel.client")


class LocalProxy:
    """A local proxy: forwards local TCP connections through a tunnel, like localproxy.

    **Source mode** listens on ``bind_host`` per service (port 0: an ephemeral port; see
    :attr:`ports`). Each accepted connection sends STREAM_START (connection 1) or, on V3
    while the service's stream is active, CONNECTION_START with the next connection id;
    DATA flows both ways; when the local connection closes it sends CONNECTION_RESET (V3)
    or STREAM_RESET (V1/V2). On V1/V2 a service carries one connection at a time: further
    connections wait until it ends.

    **Destination mode** connects to the mapped ``host:port`` on STREAM_START and
    CONNECTION_START, forwards DATA both ways, and answers a failed connect with
    STREAM_RESET (new stream) or CONNECTION_RESET (new connection).

    ``services`` takes the forms of localproxy's ``-s`` / ``-d`` options or a dict:
    ``{"SSH1": 0}``, ``"SSH1=15555"``, ``{"SSH1": "127.0.0.1:22"}``, ``"22"``. The mapping
    is checked against SERVICE_IDS as localproxy checks it. When the WebSocket closes,
    every local connection is reset and the proxy ends (:meth:`wait_closed`); it does not
    reconnect.

    Which ids to use and what each tunneling message means for the local connections
    is decided by :class:`~pytest_securetunnel.protocol.LocalProxyPolicy`; this class
    carries out its decisions.
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
        """Configure the proxy; :meth:`start` (or ``async with``) connects it."""
        self.mode = ClientMode(mode)
        """The proxy's mode."""
        self.client: TunnelClient | None = None
        """The tunnel client, once started."""
        self.error: Exception | None = None
        """The fatal error that ended the proxy, if any."""
        self._connect = functools.partial(
            TunnelClient.connect,
            endpoint,
            token,
            self.mode,
            version=version,
            client_token=client_token,
            ssl=ssl,
            open_timeout=open_timeout,
        )
        self._services_spec = services
        self._bind_host = bind_host
        self._connect_timeout = connect_timeout
        self._services: dict[str, Service] = {}
        self._policy: LocalProxyPolicy | None = None
        self._links: dict[LocalLink, Link] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dispatcher: asyncio.Task[None] | None = None
        self._stopped = False

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
        return self._dispatcher is not None and self._dispatcher.done()

    def _require_client(self) -> TunnelClient:
        if self.client is None:
            raise RuntimeError("the LocalProxy is not started")
        return self.client

    def _require_policy(self) -> LocalProxyPolicy:
        if self._policy is None:
            raise RuntimeError("the LocalProxy is not started")
        return self._policy

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> LocalProxy:
        """Connect, check the mapping against SERVICE_IDS and start forwarding.

        Raises :class:`LocalProxyError` for a mapping that does not fit the tunnel, and
        whatever :meth:`TunnelClient.connect` raises.
        """
        if self.client is not None:
            raise RuntimeError("the LocalProxy was already started")
        self.client = await self._connect()
        self._policy = LocalProxyPolicy(self.mode, self.client.version)
        try:
            service_ids = self.client.service_ids if self.client.version.has_service_ids else None
            for target in plan_services(
                self.mode, self._services_spec, service_ids, self._bind_host
            ):
                service = self._services[target.name] = Service(*target)
                self._policy.add_service(target.name, target.wire_id)
                if self.mode is ClientMode.SOURCE:
                    await self._listen(service)
            self._dispatcher = asyncio.create_task(self._dispatch(), name="LocalProxy dispatch")
        except BaseException:
            await self.stop()
            raise
        return self

    async def _listen(self, service: Service) -> None:
        service.server = await asyncio.start_server(
            functools.partial(self._on_accept, service), service.host, service.port
        )
        service.port = service.server.sockets[0].getsockname()[1]
        # localproxy log marker.
        _log.info("Listening for new connection on port %d (%r)", service.port, service.name)

    async def stop(self) -> None:
        """Stop listening, close the WebSocket and every local connection; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for service in self._services.values():
            if service.server is not None:
                service.server.close()
        if self.client is not None:
            await self.client.close()
        if self._dispatcher is not None:
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for service in self._services.values():
            if service.server is not None:
                await service.server.wait_closed()

    async def wait_closed(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until the proxy has ended (its WebSocket closed)."""
        if self._dispatcher is None:
            raise RuntimeError("the LocalProxy is not started")
        try:
            await asyncio.wait_for(asyncio.shield(self._dispatcher), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the LocalProxy did not end within {timeout} s") from None

    async def __aenter__(self) -> LocalProxy:
        """Start the proxy."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the proxy."""
        await self.stop()

    # -- local connections ---------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, message: TunnelMessage) -> bool:
        try:
            await self._require_client().send_message(message)
        except TunnelClosedError:
            return False
        return True

    async def _on_accept(
        self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._require_policy().uses_connection_ids(service.name):
                await self._forward_source(service, reader, writer)
            else:
                # localproxy V1/V2: one TCP connection per service; the next one waits.
                async with service.exclusive:
                    await self._forward_source(service, reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _forward_source(
        self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client = self._require_client()
        async with service.start_lock:
            state, start = self._require_policy().open_link(
                service.name, client.active_stream_id(service.wire_id)
            )
            link = self._links[state] = Link(state, reader, writer)
            if not await self._send(start):
                self._end(state)
                return
        await self._pump(link)

    def _end(self, state: LocalLink) -> TunnelMessage | None:
        """End a link on this side; the message telling the peer, if it was live."""
        reset = self._require_policy().end(state)
        self._close_local(state)
        return reset

    def _close_local(self, state: LocalLink) -> None:
        link = self._links.pop(state, None)
        if link is not None:
            link.close()

    async def _pump(self, link: Link) -> None:
        """Forward what the local application sends until it closes, then reset."""
        state = link.state
        try:
            while not state.ended and (payload := await link.read()):
                if not await self._send(state.data_message(payload)):
                    break
            reset = self._end(state)
            if reset is not None:
                await self._send(reset)
        finally:
            self._end(state)
            await link.wait_closed()

    async def _connect_local(self, request: ConnectLocal) -> None:
        service = self._services[request.service]
        policy = self._require_policy()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(service.host, service.port), self._connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            _log.info("Cannot connect to %s:%d: %s", service.host, service.port, exc)
            await self._send(policy.connect_failed(request))
            return
        state = policy.connected(request)
        link = self._links[state] = Link(state, reader, writer)
        _log.info("Connected to %s:%d", service.host, service.port)  # localproxy log marker
        self._spawn(self._pump(link))

    # -- tunnel messages -----------------------------------------------------------------

    async def _dispatch(self) -> None:
        client = self._require_client()
        try:
            async for message in client:
                for action in self._require_policy().receive(message):
                    await self._carry_out(action)
        except Exception as exc:  # LocalProxyError, or a bug: end the proxy either way
            self.error = exc
            _log.error("LocalProxy stops: %s", exc)
            await client.close(1000, "")
        finally:
            # localproxy: on close it resets every local TCP connection and exits.
            for service in self._services.values():
                if service.server is not None:
                    service.server.close()
            if self._policy is not None:
                for state in self._policy.end_all():
                    self._close_local(state)

    async def _carry_out(self, action: LocalProxyAction) -> None:
        if isinstance(action, WriteLocal):
            link = self._links.get(action.link)
            if link is not None:
                await link.write(action.payload)
        elif isinstance(action, EndLocal):
            self._close_local(action.link)
        elif isinstance(action, SendMessage):
            await self._send(action.message)
        elif isinstance(action, ConnectLocal):
            await self._connect_local(action)
        elif isinstance(action, Ignored):
            _log.warning("Ignoring %r: %s", action.message, action.reason)
        elif isinstance(action, Fatal):
            raise LocalProxyError(action.reason)
