"""``LocalProxy``: TCP port forwarding over a tunnel, with the reference local proxy's semantics."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl as ssl_module
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

from ..protocol import ClientMode, MessageType, ProtocolVersion, TunnelMessage
from ._errors import LocalProxyError, TunnelClosedError
from ._links import Link, Service
from ._mapping import (
    ServiceMapping,
    parse_destination_mapping,
    parse_source_mapping,
    resolve_services,
)
from ._tunnel_client import DEFAULT_TIMEOUT, TunnelClient

__all__ = ["LocalProxy"]

_log = logging.getLogger("pytest_securetunnel.client")
_INT32_MAX = 2**31 - 1


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
        return sum(len(service.links) for service in self._services.values())

    @property
    def closed(self) -> bool:
        """Whether the proxy has ended (stopped, or its WebSocket closed)."""
        return self._dispatcher is not None and self._dispatcher.done()

    def _require_client(self) -> TunnelClient:
        if self.client is None:
            raise RuntimeError("the LocalProxy is not started")
        return self.client

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> LocalProxy:
        """Connect, check the mapping against SERVICE_IDS and start forwarding.

        Raises :class:`LocalProxyError` for a mapping that does not fit the tunnel, and
        whatever :meth:`TunnelClient.connect` raises.
        """
        if self.client is not None:
            raise RuntimeError("the LocalProxy was already started")
        self.client = await self._connect()
        try:
            service_ids = self.client.service_ids if self.client.version.has_service_ids else None
            if self.mode is ClientMode.SOURCE:
                await self._listen(parse_source_mapping(self._services_spec), service_ids)
            else:
                targets = parse_destination_mapping(self._services_spec)
                for name, (wire_id, (host, port)) in resolve_services(
                    targets, service_ids, default=None
                ).items():
                    self._services[name] = Service(name, wire_id, host, port)
            self._dispatcher = asyncio.create_task(self._dispatch(), name="LocalProxy dispatch")
        except BaseException:
            await self.stop()
            raise
        return self

    async def _listen(self, mapping: dict[str, int], service_ids: tuple[str, ...] | None) -> None:
        for name, (wire_id, port) in resolve_services(mapping, service_ids, default=0).items():
            service = Service(name, wire_id, self._bind_host, port)
            self._services[name] = service
            service.server = await asyncio.start_server(
                functools.partial(self._on_accept, service), self._bind_host, port
            )
            service.port = service.server.sockets[0].getsockname()[1]
            # localproxy log marker.
            _log.info("Listening for new connection on port %d (%r)", service.port, name)

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
            if self._uses_connection_ids(service):
                await self._forward_source(service, reader, writer)
            else:
                # localproxy V1/V2: one TCP connection per service; the next one waits.
                async with service.exclusive:
                    await self._forward_source(service, reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    def _uses_connection_ids(self, service: Service) -> bool:
        return self._require_client().version.has_connection_ids and not service.v2_peer

    async def _forward_source(
        self, service: Service, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client = self._require_client()
        v3 = self._uses_connection_ids(service)
        async with service.start_lock:
            stream_id = client.active_stream_id(service.wire_id) if v3 else None
            if stream_id is None:
                # V3 guide: the first connection opens the stream with StreamStart, connection 1.
                # localproxy: stream ids count up per service id from 1.
                service.last_stream_id = service.last_stream_id % _INT32_MAX + 1
                stream_id = service.last_stream_id
                link = Link(service, service.wire_id, stream_id, 1, v3, reader, writer)
                service.links[link.key] = link
                service.next_connection_id = 2
                start = TunnelMessage.stream_start(stream_id, service.wire_id, 1 if v3 else 0)
            else:
                # V3 guide: later connections while the stream is alive use ConnectionStart.
                connection_id = service.next_connection_id
                service.next_connection_id += 1
                link = Link(
                    service, service.wire_id, stream_id, connection_id, True, reader, writer
                )
                service.links[link.key] = link
                start = TunnelMessage.connection_start(stream_id, connection_id, service.wire_id)
            if not await self._send(start):
                link.end()
                return
        await self._pump(link)

    async def _pump(self, link: Link) -> None:
        """Forward what the local application sends until it closes, then reset."""
        try:
            while not link.ended and (payload := await link.read()):
                if not await self._send(link.data_message(payload)):
                    break
            if link.end():
                await self._send(link.reset_message())
        finally:
            link.end()
            await link.wait_closed()

    async def _connect_link(self, service: Service, message: TunnelMessage, v3: bool) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(service.host, service.port), self._connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            _log.info("Cannot connect to %s:%d: %s", service.host, service.port, exc)
            # V3 guide: a failed new stream gets StreamReset, a failed new connection
            # ConnectionReset, with the requested ids.
            if message.type == MessageType.STREAM_START:
                await self._send(TunnelMessage.stream_reset(message.stream_id, message.service_id))
            else:
                await self._send(
                    TunnelMessage.connection_reset(
                        message.stream_id, message.connection_id, message.service_id
                    )
                )
            return
        link = Link(
            service,
            message.service_id,  # a V1 peer sends none and gets none back
            message.stream_id,
            message.connection_id or 1,
            v3,
            reader,
            writer,
        )
        service.links[link.key] = link
        _log.info("Connected to %s:%d", service.host, service.port)  # localproxy log marker
        self._spawn(self._pump(link))

    # -- tunnel messages -----------------------------------------------------------------

    def _service_for(self, wire_id: str) -> Service | None:
        for service in self._services.values():
            if service.wire_id == wire_id:
                return service
        if not wire_id and len(self._services) == 1:
            return next(iter(self._services.values()))  # a V1 peer sends no service id
        return None

    async def _dispatch(self) -> None:
        client = self._require_client()
        try:
            async for message in client:
                await self._handle(message)
        except Exception as exc:  # LocalProxyError, or a bug: end the proxy either way
            self.error = exc
            _log.error("LocalProxy stops: %s", exc)
            await client.close(1000, "")
        finally:
            # localproxy: on close it resets every local TCP connection and exits.
            for service in self._services.values():
                if service.server is not None:
                    service.server.close()
            self._end_all()

    def _end_all(self) -> None:
        for service in self._services.values():
            for link in service.links_of():
                link.end()

    async def _handle(self, message: TunnelMessage) -> None:
        kind = message.type
        if kind == MessageType.SESSION_RESET:
            self._end_all()  # All guides: handled like StreamReset for every stream.
            return
        if kind not in self._require_client().version.message_types:
            await self._unknown_type(message)
            return
        found = self._service_for(message.service_id)
        if found is None:
            _log.warning("Ignoring %r: no mapping for its service id", message)
            return
        link = found.links.get((message.stream_id, message.connection_id or 1))
        if kind == MessageType.DATA:
            if link is not None:
                if link.use_connection_ids and not message.connection_id:
                    # localproxy: DATA without connectionId makes it fall back to V2.
                    link.use_connection_ids = False
                    found.v2_peer = self.mode is ClientMode.SOURCE
                await link.write(message.payload)
        elif kind == MessageType.STREAM_RESET:
            for stream_link in found.links_of(message.stream_id):
                stream_link.end()
        elif kind == MessageType.CONNECTION_RESET:
            if link is not None:
                link.end()
        elif self.mode is ClientMode.DESTINATION:
            await self._start_destination(found, message)
        # A source ignores STREAM_START / CONNECTION_START (the service forbids them).

    async def _start_destination(self, service: Service, message: TunnelMessage) -> None:
        client = self._require_client()
        if message.type == MessageType.STREAM_START:
            # V3 guide: a new StreamStart ends the current stream; connectionId absent
            # means a V2 peer, so this stream uses no connection ids.
            for link in service.links_of():
                link.end()
            v3 = client.version.has_connection_ids and message.connection_id != 0
            await self._connect_link(service, message, v3)
        elif message.type == MessageType.CONNECTION_START:
            existing = service.links.get((message.stream_id, message.connection_id))
            if existing is not None:
                # V3 guide: ConnectionStart for an open connection id is an error.
                existing.end()
                await self._send(existing.reset_message())
                return
            await self._connect_link(service, message, True)

    async def _unknown_type(self, message: TunnelMessage) -> None:
        if message.type in (MessageType.CONNECTION_START, MessageType.CONNECTION_RESET):
            # V3 guide: a V2 local proxy does not know these types and sends StreamReset.
            service = self._service_for(message.service_id)
            if service is not None:
                for link in service.links_of(message.stream_id):
                    link.end()
                await self._send(TunnelMessage.stream_reset(message.stream_id, message.service_id))
            return
        if message.ignorable:
            return  # All guides: an unknown type with ignorable set may be ignored.
        raise LocalProxyError(f"Unexpected message type {message.type_name} (not ignorable)")
