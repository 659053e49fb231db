"""``TunnelClient``: an asyncio client of the tunneling WebSocket proxy, for either mode.

It carries out the decisions of :class:`~pytest_securetunnel.protocol.TunnelClientPolicy`
on a ``websockets.asyncio`` connection; :class:`SyncTunnelClient` does the same on
``websockets.sync``.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..protocol import ClientMode, ProtocolVersion, TunnelMessage
from ._client_base import DEFAULT_TIMEOUT, ClientBase, as_version
from ._errors import TunnelClientError, TunnelClosedError
from ._handshake import HeadersLike, TokenLocation, open_tunnel_websocket, tunnel_handshake
from ._records import MessageMatcher
from ._sync_client import SyncTunnelClient

__all__ = ["DEFAULT_TIMEOUT", "SyncTunnelClient", "TunnelClient"]

_T = TypeVar("_T")


class TunnelClient(ClientBase):
    """One tunnel client (source or destination) connected to a tunneling proxy.

    Create it with :meth:`connect`. A background task reads the WebSocket: every message
    is appended to :attr:`messages`; SERVICE_IDS sets :attr:`service_ids`; other messages
    queue up for :meth:`receive` (and ``async for``) unless they are stale. Streams are
    tracked per service id from both directions: a STREAM_START received (destination) or
    sent (source) makes its stream id the active one, and DATA, STREAM_RESET,
    CONNECTION_START and CONNECTION_RESET for another stream id are dropped (V3 guide:
    "this message is considered to be stale and will be discarded"). Received messages
    are read as this client's protocol version reads them: a V1 client sees no service
    ids, a V1/V2 client no connection ids. These decisions are
    :class:`~pytest_securetunnel.protocol.TunnelClientPolicy`'s; this class does the I/O.
    """

    _ws: ClientConnection

    def __init__(
        self,
        websocket: ClientConnection,
        mode: ClientMode,
        version: ProtocolVersion,
        *,
        drop_stale: bool = True,
    ) -> None:
        """Wrap an open WebSocket; use :meth:`connect` instead. Needs a running loop."""
        response = websocket.response
        channel_id = response.headers.get("channel-id") if response else None
        super().__init__(mode, version, channel_id, drop_stale=drop_stale)
        self._ws = websocket
        self._changed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_loop(), name=f"TunnelClient {mode.value}")

    @classmethod
    async def connect(
        cls,
        endpoint: str,
        token: str | None,
        mode: ClientMode | str,
        *,
        client_token: str | None = None,
        version: ProtocolVersion | int | str = ProtocolVersion.V3,
        ssl: ssl_module.SSLContext | None = None,
        token_in: TokenLocation = "header",
        extra_headers: HeadersLike | None = None,
        open_timeout: float | None = DEFAULT_TIMEOUT,
        wait_service_ids: bool = True,
        drop_stale: bool = True,
    ) -> TunnelClient:
        """Connect to ``{endpoint}/tunnel?local-proxy-mode={mode}`` and return the client.

        ``endpoint`` is ``ws://host:port``, ``wss://host:port`` or ``host[:port]``. The
        token goes in the ``access-token`` header or, with ``token_in="cookie"``, the
        ``awsiot-tunnel-token`` cookie; ``None`` sends no token. One subprotocol is
        offered, the one of ``version``. On V2/V3 the call returns once SERVICE_IDS has
        arrived (unless ``wait_service_ids`` is false), waiting up to ``open_timeout``.

        Raises :class:`HandshakeRefused` (HTTP error), :class:`HandshakeError`,
        ``OSError`` (cannot connect) or ``TimeoutError``.
        """
        mode = ClientMode(mode)
        handshake = tunnel_handshake(
            endpoint,
            token,
            mode,
            as_version(version),
            client_token=client_token,
            ssl=ssl,
            token_in=token_in,
            extra_headers=extra_headers,
            open_timeout=open_timeout,
        )
        websocket = await open_tunnel_websocket(handshake)
        assert websocket.subprotocol is not None  # checked by open_tunnel_websocket
        negotiated = ProtocolVersion.from_subprotocol(websocket.subprotocol)
        client = cls(websocket, mode, negotiated, drop_stale=drop_stale)
        if wait_service_ids:
            try:
                await client.wait_service_ids(timeout=open_timeout)
            except BaseException:
                await client.close()
                raise
        return client

    @classmethod
    def sync(
        cls, endpoint: str, token: str | None, mode: ClientMode | str, **kwargs: Any
    ) -> SyncTunnelClient:
        """Connect a :class:`SyncTunnelClient` (same arguments as :meth:`connect`)."""
        return SyncTunnelClient.connect(endpoint, token, mode, **kwargs)

    # -- receiving -----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            async for data in self._ws:
                close = self._policy.receive_frame(data)
                self._notify()
                if close is not None:
                    self.error = close.error or TunnelClientError(close.reason)
                    await self._ws.close(close.code, close.reason)
                    return
        except ConnectionClosed:
            pass
        except Exception as exc:  # never leave an unretrieved task exception behind
            self.error = exc
        finally:
            self._policy.connection_closed()
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, check: Callable[[], _T | None], timeout: float | None, what: str) -> _T:
        """``check()`` once it is not ``None``; ``TimeoutError`` or the closed error else."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while (result := self._poll(check, what)) is None:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise self._timeout(what, timeout)
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                continue
        return result

    async def receive(self, timeout: float | None = DEFAULT_TIMEOUT) -> TunnelMessage:
        """Return the next received message (SERVICE_IDS and stale messages excluded).

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: wait forever) and
        :class:`TunnelClosedError` once the WebSocket is closed and nothing is queued.
        """
        return await self._wait(self._next, timeout, "message")

    async def receive_data(
        self,
        service_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
        stream_id: int | None = None,
        connection_id: int | None = None,
    ) -> bytes:
        """Return the payload of the next DATA message matching the filters (``None``: any).

        Other queued messages stay queued for :meth:`receive`.
        """
        check = self._next_data(service_id, stream_id, connection_id)
        return (await self._wait(check, timeout, "DATA message")).payload

    async def wait_for(
        self,
        match: MessageMatcher | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        service_id: str | None = None,
        stream_id: int | None = None,
        connection_id: int | None = None,
        since: int = 0,
    ) -> TunnelMessage:
        """Wait for a received message that matches and return it, without consuming it.

        ``match`` is a predicate or a :class:`MessageType`; the keyword filters narrow it.
        Looks at :attr:`messages` from index ``since`` on, so a message that already
        arrived counts (pass ``since=len(client.messages)`` for new ones only). Stale
        (dropped) messages never match. Raises ``TimeoutError`` or
        :class:`TunnelClosedError`.
        """
        check = self._first_match(match, service_id, stream_id, connection_id, since)
        return await self._wait(check, timeout, "matching message")

    async def wait_service_ids(self, timeout: float | None = DEFAULT_TIMEOUT) -> tuple[str, ...]:
        """Wait for SERVICE_IDS and return its service ids (``()`` at once on V1)."""
        if not self.version.has_service_ids:
            return ()  # V1 has no SERVICE_IDS message.
        return await self._wait(lambda: self.service_ids, timeout, "SERVICE_IDS message")

    async def wait_closed(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until the WebSocket is closed (by either side)."""
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the tunnel WebSocket did not close within {timeout} s") from None

    def __aiter__(self) -> TunnelClient:
        """Iterate over received messages until the WebSocket closes."""
        return self

    async def __anext__(self) -> TunnelMessage:
        """Return the next received message; stop once closed and drained."""
        try:
            return await self.receive(timeout=None)
        except TunnelClosedError:
            raise StopAsyncIteration from None

    # -- sending -------------------------------------------------------------------------

    async def _send_all(self, messages: list[TunnelMessage], enforce_limit: bool = True) -> None:
        frames = self._policy.encode(messages, enforce_limit)
        async with self._send_lock:
            for message, frame in zip(messages, frames, strict=True):
                if self.closed:
                    raise self._closed_error(f"cannot send {message!r}")
                self._policy.sending(message)
                self._notify()
                try:
                    await self._ws.send(frame)
                except ConnectionClosed as exc:
                    raise self._closed_error(f"cannot send {message!r}") from exc

    async def send_message(
        self, message: TunnelMessage, *, enforce_payload_limit: bool = True
    ) -> None:
        """Send one message as it is, in its own WebSocket message (as localproxy does).

        With ``enforce_payload_limit=False`` an oversized payload is sent anyway, to test
        how a proxy handles it.
        """
        await self._send_all([message], enforce_payload_limit)

    async def send_bytes(self, data: bytes) -> None:
        """Send raw bytes as one binary WebSocket message (not logged, not tracked)."""
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise self._closed_error("cannot send raw bytes") from exc

    async def start_stream(self, service_id: str = "", connection_id: int = 1) -> int:
        """Send STREAM_START with the next stream id for ``service_id``; return the id.

        Stream ids count up per service id from 1 (localproxy). The connection id is sent
        on V3 only (V3 guide: the first connection of a stream is connection 1).
        """
        message = self._stream_start(service_id, connection_id)
        await self.send_message(message)
        return message.stream_id

    async def start_connection(
        self,
        stream_id: int | None = None,
        connection_id: int | None = None,
        service_id: str = "",
    ) -> int:
        """Send CONNECTION_START (V3) on the active (or given) stream; return the id.

        Without ``connection_id`` the next unused one is taken (2, 3, ...).
        """
        message = self._connection_start(stream_id, connection_id, service_id)
        await self.send_message(message)
        return message.connection_id

    async def send(
        self,
        data: bytes,
        stream_id: int | None = None,
        service_id: str = "",
        connection_id: int = 1,
    ) -> None:
        """Send ``data`` as DATA messages of at most 64512 bytes each, back to back.

        ``stream_id`` defaults to the active stream of ``service_id``. Empty ``data``
        sends nothing. The connection id is sent on V3 only.
        """
        await self._send_all(self._data(data, stream_id, service_id, connection_id))

    async def reset_stream(self, stream_id: int | None = None, service_id: str = "") -> None:
        """Send STREAM_RESET for the active (or given) stream of ``service_id``."""
        await self.send_message(self._stream_reset(stream_id, service_id))

    async def reset_connection(
        self, stream_id: int | None = None, connection_id: int = 1, service_id: str = ""
    ) -> None:
        """Send CONNECTION_RESET (V3) for a connection of the active (or given) stream."""
        await self.send_message(self._connection_reset(stream_id, connection_id, service_id))

    async def ping(self, data: bytes = b"", *, timeout: float | None = DEFAULT_TIMEOUT) -> float:
        """Send a WebSocket ping and wait for its pong; return the round trip in seconds.

        The service answers pings with a pong echoing the payload (protocol guides,
        "WebSocket Subprotocol").
        """
        waiter = await self._ws.ping(data)
        return float(await asyncio.wait_for(waiter, timeout))

    # -- closing -------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket (if open) and wait for the reader task to end."""
        await self._ws.close(code, reason)
        await asyncio.gather(self._reader, return_exceptions=True)

    async def __aenter__(self) -> TunnelClient:
        """Return the client; it is closed on exit."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the client."""
        await self.close()
