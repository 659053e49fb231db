"""``TunnelClient``: an asyncio client of the tunneling WebSocket proxy, for either mode.

``SyncTunnelClient`` drives it from synchronous code, on its own loop thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl as ssl_module
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Final, TypeVar

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from .._lifecycle import LoopThread
from ..protocol import (
    MAX_PAYLOAD_SIZE,
    ClientMode,
    FrameDecoder,
    MessageType,
    ProtocolError,
    ProtocolVersion,
    StreamTable,
    TunnelMessage,
    encode_frame,
)
from ._errors import TunnelClientError, TunnelClosedError
from ._handshake import HeadersLike, TokenLocation, open_tunnel_websocket
from ._inbox import Inbox
from ._records import MessageMatcher, MessageRecord, message_matcher

__all__ = ["DEFAULT_TIMEOUT", "SyncTunnelClient", "TunnelClient"]

#: Seconds the waiting methods wait by default.
DEFAULT_TIMEOUT: Final = 10.0

_T = TypeVar("_T")
_INT32_MAX: Final = 2**31 - 1
# V3 guide: stream ID validation is performed on these types; others are never stale.
_STREAM_CHECKED: Final = frozenset(
    {
        MessageType.DATA,
        MessageType.STREAM_RESET,
        MessageType.CONNECTION_START,
        MessageType.CONNECTION_RESET,
    }
)


def _as_version(version: ProtocolVersion | int | str) -> ProtocolVersion:
    if isinstance(version, str):
        return ProtocolVersion.from_subprotocol(version)
    return ProtocolVersion(version)


class TunnelClient:
    """One tunnel client (source or destination) connected to a tunneling proxy.

    Create it with :meth:`connect`. A background task reads the WebSocket: every message
    is appended to :attr:`messages`; SERVICE_IDS sets :attr:`service_ids`; other messages
    queue up for :meth:`receive` (and ``async for``) unless they are stale. Streams are
    tracked per service id from both directions: a STREAM_START received (destination) or
    sent (source) makes its stream id the active one, and DATA, STREAM_RESET,
    CONNECTION_START and CONNECTION_RESET for another stream id are dropped (V3 guide:
    "this message is considered to be stale and will be discarded"). Received messages
    are read as this client's protocol version reads them: a V1 client sees no service
    ids, a V1/V2 client no connection ids.
    """

    def __init__(
        self,
        websocket: ClientConnection,
        mode: ClientMode,
        version: ProtocolVersion,
        *,
        drop_stale: bool = True,
    ) -> None:
        """Wrap an open WebSocket; use :meth:`connect` instead. Needs a running loop."""
        self.mode: ClientMode = mode
        """The client's mode."""
        self.version: ProtocolVersion = version
        """The negotiated protocol version."""
        self.subprotocol: str = version.subprotocol
        """The negotiated ``Sec-WebSocket-Protocol``."""
        response = websocket.response
        self.channel_id: str | None = response.headers.get("channel-id") if response else None
        """The ``channel-id`` header of the handshake response."""
        self.service_ids: tuple[str, ...] | None = None
        """Service ids from the last SERVICE_IDS message, or ``None`` before one arrived."""
        self.drop_stale: bool = drop_stale
        """Whether stale messages are dropped (they stay in :attr:`messages` either way)."""
        self.error: Exception | None = None
        """What made the client close the WebSocket itself (e.g. an unparsable frame)."""
        self._ws = websocket
        self._decoder = FrameDecoder(allow_unknown_fields=True)  # guides: ignore unknown fields
        self._streams = StreamTable()
        self._next_connection: dict[str, int] = {}
        self._inbox = Inbox(self._closed_error)
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
        websocket = await open_tunnel_websocket(
            endpoint,
            token,
            mode,
            _as_version(version),
            client_token=client_token,
            ssl=ssl,
            token_in=token_in,
            extra_headers=extra_headers,
            open_timeout=open_timeout,
        )
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

    # -- state ---------------------------------------------------------------------------

    @property
    def messages(self) -> list[MessageRecord]:
        """Every message sent and received so far, in order (a copy)."""
        return list(self._inbox.log)

    @property
    def active_streams(self) -> Mapping[str, int]:
        """Service id -> active stream id (``""`` for no service id)."""
        return self._streams.active_streams

    def active_stream_id(self, service_id: str = "") -> int | None:
        """The active stream id for ``service_id``, or ``None``."""
        return self._streams.active_stream_id(service_id)

    def connection_ids(self, service_id: str = "") -> frozenset[int]:
        """Open connection ids of the active stream for ``service_id`` (V3)."""
        return self._streams.connection_ids(service_id)

    @property
    def closed(self) -> bool:
        """Whether the WebSocket is closed."""
        return self._inbox.closed

    @property
    def close_code(self) -> int | None:
        """Close code received from the proxy (``1006`` if dropped), ``None`` while open."""
        return self._ws.close_code

    @property
    def close_reason(self) -> str | None:
        """Close reason received from the proxy, ``None`` while open."""
        return self._ws.close_reason

    # -- receiving -----------------------------------------------------------------------

    async def _read_loop(self) -> None:
        try:
            async for data in self._ws:
                if isinstance(data, str):
                    await self._fail(1003, "text frames are not tunneling frames", None)
                    return
                try:
                    messages = self._decoder.feed(data)
                except ProtocolError as exc:
                    for message in exc.accepted:
                        self._on_received(message)
                    await self._fail(1002, "Could not parse web socket binary frame", exc)
                    return
                for message in messages:
                    self._on_received(message)
        except ConnectionClosed:
            pass
        except Exception as exc:  # never leave an unretrieved task exception behind
            self.error = exc
        finally:
            self._inbox.close()

    async def _fail(self, code: int, reason: str, error: Exception | None) -> None:
        self.error = error or TunnelClientError(reason)
        await self._ws.close(code, reason)

    def _as_read(self, message: TunnelMessage) -> TunnelMessage:
        # Cross-version interop is at message level: fields outside a version's schema are
        # unknown to it and ignored (V2/V3 guides, 'Backward compatibility').
        if not self.version.has_connection_ids and message.connection_id:
            message = dataclasses.replace(message, connection_id=0)
        if not self.version.has_service_ids and (
            message.service_id or message.available_service_ids
        ):
            message = dataclasses.replace(message, service_id="", available_service_ids=())
        return message

    def _keyed(self, message: TunnelMessage) -> TunnelMessage:
        """``message`` with the service id its stream is tracked under.

        V2 guide, 'Backward compatibility': a V1 peer sends no service id, which works for
        a single service; such messages belong to the one active stream.
        """
        active = self._streams.active_streams
        if message.service_id or "" in active or len(active) != 1:
            return message
        return dataclasses.replace(message, service_id=next(iter(active)))

    def _is_stale(self, message: TunnelMessage) -> bool:
        if message.type not in _STREAM_CHECKED:
            return False
        keyed = self._keyed(message)
        return self._streams.active_stream_id(keyed.service_id) != message.stream_id

    def _track(self, message: TunnelMessage, *, from_client: bool) -> None:
        if message.type == MessageType.STREAM_START:
            if not from_client and self.mode is ClientMode.SOURCE:
                return  # V3 guide: a source treats a received StreamStart as an error.
            self._next_connection[message.service_id] = 2
        self._streams.apply(self._keyed(message), from_client=from_client)

    def _on_received(self, message: TunnelMessage) -> None:
        message = self._as_read(message)
        if message.type == MessageType.SERVICE_IDS:
            self.service_ids = message.available_service_ids
            self._inbox.record(MessageRecord("received", message))
            return
        dropped = self.drop_stale and self._is_stale(message)
        if not dropped:
            self._track(message, from_client=False)
        self._inbox.record(MessageRecord("received", message, dropped), deliver=not dropped)

    def _closed_error(self, detail: str) -> TunnelClosedError:
        error = TunnelClosedError(self.close_code, self.close_reason or "", detail)
        error.__cause__ = self.error
        return error

    async def receive(self, timeout: float | None = DEFAULT_TIMEOUT) -> TunnelMessage:
        """Return the next received message (SERVICE_IDS and stale messages excluded).

        Raises ``TimeoutError`` after ``timeout`` seconds (``None``: wait forever) and
        :class:`TunnelClosedError` once the WebSocket is closed and nothing is queued.
        """
        return await self._inbox.wait(lambda: self._inbox.take(lambda _: True), timeout, "message")

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
        predicate = message_matcher(
            MessageType.DATA,
            service_id=service_id,
            stream_id=stream_id,
            connection_id=connection_id,
        )
        message = await self._inbox.wait(
            lambda: self._inbox.take(predicate), timeout, "DATA message"
        )
        return message.payload

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
        predicate = message_matcher(
            match, service_id=service_id, stream_id=stream_id, connection_id=connection_id
        )

        return await self._inbox.wait(
            lambda: self._inbox.find(predicate, since), timeout, "matching message"
        )

    async def wait_service_ids(self, timeout: float | None = DEFAULT_TIMEOUT) -> tuple[str, ...]:
        """Wait for SERVICE_IDS and return its service ids (``()`` at once on V1)."""
        if not self.version.has_service_ids:
            return ()  # V1 has no SERVICE_IDS message.
        return await self._inbox.wait(lambda: self.service_ids, timeout, "SERVICE_IDS message")

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
        frames = [
            encode_frame(message, enforce_payload_limit=enforce_limit) for message in messages
        ]
        async with self._send_lock:
            for message, frame in zip(messages, frames, strict=True):
                if self.closed:
                    raise self._closed_error(f"cannot send {message!r}")
                self._track(message, from_client=True)
                self._inbox.record(MessageRecord("sent", message))
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

    def _wire_ids(self, service_id: str, connection_id: int) -> tuple[str, int]:
        if service_id and not self.version.has_service_ids:
            raise ValueError(f"{self.version.guide}: messages carry no service id")
        return service_id, connection_id if self.version.has_connection_ids else 0

    def _stream_for(self, stream_id: int | None, service_id: str) -> int:
        if self.closed:
            raise self._closed_error("cannot send")
        if stream_id is not None:
            return stream_id
        active = self._streams.active_stream_id(service_id)
        if active is None:
            raise TunnelClientError(
                f"no active stream for service id {service_id!r}: call start_stream() "
                "(source) or wait for the peer's STREAM_START (destination)"
            )
        return active

    async def start_stream(self, service_id: str = "", connection_id: int = 1) -> int:
        """Send STREAM_START with the next stream id for ``service_id``; return the id.

        Stream ids count up per service id from 1 (localproxy). The connection id is sent
        on V3 only (V3 guide: the first connection of a stream is connection 1).
        """
        last = self._streams.last_stream_id(service_id)
        stream_id = 1 if last is None else last % _INT32_MAX + 1
        service_id, connection_id = self._wire_ids(service_id, connection_id)
        await self.send_message(TunnelMessage.stream_start(stream_id, service_id, connection_id))
        return stream_id

    async def start_connection(
        self,
        stream_id: int | None = None,
        connection_id: int | None = None,
        service_id: str = "",
    ) -> int:
        """Send CONNECTION_START (V3) on the active (or given) stream; return the id.

        Without ``connection_id`` the next unused one is taken (2, 3, ...).
        """
        if not self.version.has_connection_ids:
            raise ValueError(f"CONNECTION_START is not part of the {self.version.guide}")
        stream_id = self._stream_for(stream_id, service_id)
        if connection_id is None:
            used = max(self._streams.connection_ids(service_id), default=1)
            connection_id = max(self._next_connection.get(service_id, 2), used + 1)
            self._next_connection[service_id] = connection_id + 1
        await self.send_message(
            TunnelMessage.connection_start(stream_id, connection_id, service_id)
        )
        return connection_id

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
        stream_id = self._stream_for(stream_id, service_id)
        service_id, connection_id = self._wire_ids(service_id, connection_id)
        view = memoryview(data)
        chunks = [
            TunnelMessage.data(
                stream_id, bytes(view[i : i + MAX_PAYLOAD_SIZE]), service_id, connection_id
            )
            for i in range(0, len(view), MAX_PAYLOAD_SIZE)
        ]
        await self._send_all(chunks)

    async def reset_stream(self, stream_id: int | None = None, service_id: str = "") -> None:
        """Send STREAM_RESET for the active (or given) stream of ``service_id``."""
        stream_id = self._stream_for(stream_id, service_id)
        service_id, _ = self._wire_ids(service_id, 0)
        await self.send_message(TunnelMessage.stream_reset(stream_id, service_id))

    async def reset_connection(
        self, stream_id: int | None = None, connection_id: int = 1, service_id: str = ""
    ) -> None:
        """Send CONNECTION_RESET (V3) for a connection of the active (or given) stream."""
        if not self.version.has_connection_ids:
            raise ValueError(f"CONNECTION_RESET is not part of the {self.version.guide}")
        stream_id = self._stream_for(stream_id, service_id)
        await self.send_message(
            TunnelMessage.connection_reset(stream_id, connection_id, service_id)
        )

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

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (
            f"<TunnelClient {self.mode.value} {self.subprotocol} "
            f"channel_id={self.channel_id!r} {state}>"
        )


class SyncTunnelClient:
    """A :class:`TunnelClient` driven from synchronous code.

    The async client runs on a private event loop in its own thread, so this works in
    plain tests and where a loop already runs in the calling thread (notebooks, async
    tests). Methods block until done; :meth:`close` (or leaving ``with``) closes the
    WebSocket and joins the thread.
    """

    def __init__(self, client: TunnelClient, thread: LoopThread) -> None:
        """Wrap ``client`` running on ``thread``; use :meth:`connect` instead."""
        self.client = client
        """The async client (use it only from coroutines run on :attr:`loop_thread`)."""
        self.loop_thread = thread
        """The thread running the client's event loop."""

    @classmethod
    def connect(
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
    ) -> SyncTunnelClient:
        """Connect; the arguments are those of :meth:`TunnelClient.connect`."""
        thread, client = LoopThread.start_with(
            f"SyncTunnelClient {ClientMode(mode).value}",
            TunnelClient.connect(
                endpoint,
                token,
                mode,
                client_token=client_token,
                version=version,
                ssl=ssl,
                token_in=token_in,
                extra_headers=extra_headers,
                open_timeout=open_timeout,
                wait_service_ids=wait_service_ids,
                drop_stale=drop_stale,
            ),
        )
        return cls(client, thread)

    # -- state (see TunnelClient) ----------------------------------------------------------

    @property
    def mode(self) -> ClientMode:
        """The client's mode."""
        return self.client.mode

    @property
    def version(self) -> ProtocolVersion:
        """The negotiated protocol version."""
        return self.client.version

    @property
    def subprotocol(self) -> str:
        """The negotiated ``Sec-WebSocket-Protocol``."""
        return self.client.subprotocol

    @property
    def channel_id(self) -> str | None:
        """The ``channel-id`` header of the handshake response."""
        return self.client.channel_id

    @property
    def service_ids(self) -> tuple[str, ...] | None:
        """Service ids from the last SERVICE_IDS message, or ``None``."""
        return self.client.service_ids

    @property
    def messages(self) -> list[MessageRecord]:
        """Every message sent and received so far, in order (a copy)."""
        return self.client.messages

    @property
    def active_streams(self) -> Mapping[str, int]:
        """Service id -> active stream id."""
        return self.client.active_streams

    @property
    def closed(self) -> bool:
        """Whether the WebSocket is closed."""
        return self.client.closed

    @property
    def close_code(self) -> int | None:
        """Close code received from the proxy, ``None`` while open."""
        return self.client.close_code

    @property
    def close_reason(self) -> str | None:
        """Close reason received from the proxy, ``None`` while open."""
        return self.client.close_reason

    @property
    def error(self) -> Exception | None:
        """What made the client close the WebSocket itself, if anything."""
        return self.client.error

    # -- actions (see TunnelClient) --------------------------------------------------------

    def start_stream(self, service_id: str = "", connection_id: int = 1) -> int:
        """Send STREAM_START; return the new stream id."""
        return self.loop_thread.run(self.client.start_stream(service_id, connection_id))

    def start_connection(
        self, stream_id: int | None = None, connection_id: int | None = None, service_id: str = ""
    ) -> int:
        """Send CONNECTION_START (V3); return the connection id."""
        return self.loop_thread.run(
            self.client.start_connection(stream_id, connection_id, service_id)
        )

    def send(
        self,
        data: bytes,
        stream_id: int | None = None,
        service_id: str = "",
        connection_id: int = 1,
    ) -> None:
        """Send ``data`` as DATA messages of at most 64512 bytes each."""
        self.loop_thread.run(self.client.send(data, stream_id, service_id, connection_id))

    def send_message(self, message: TunnelMessage, *, enforce_payload_limit: bool = True) -> None:
        """Send one message as it is."""
        self.loop_thread.run(
            self.client.send_message(message, enforce_payload_limit=enforce_payload_limit)
        )

    def send_bytes(self, data: bytes) -> None:
        """Send raw bytes as one binary WebSocket message."""
        self.loop_thread.run(self.client.send_bytes(data))

    def reset_stream(self, stream_id: int | None = None, service_id: str = "") -> None:
        """Send STREAM_RESET."""
        self.loop_thread.run(self.client.reset_stream(stream_id, service_id))

    def reset_connection(
        self, stream_id: int | None = None, connection_id: int = 1, service_id: str = ""
    ) -> None:
        """Send CONNECTION_RESET (V3)."""
        self.loop_thread.run(self.client.reset_connection(stream_id, connection_id, service_id))

    def receive(self, timeout: float | None = DEFAULT_TIMEOUT) -> TunnelMessage:
        """Return the next received message."""
        return self.loop_thread.run(self.client.receive(timeout))

    def receive_data(
        self,
        service_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
        stream_id: int | None = None,
        connection_id: int | None = None,
    ) -> bytes:
        """Return the payload of the next matching DATA message."""
        return self.loop_thread.run(
            self.client.receive_data(
                service_id, timeout, stream_id=stream_id, connection_id=connection_id
            )
        )

    def wait_for(
        self,
        match: MessageMatcher | None = None,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        service_id: str | None = None,
        stream_id: int | None = None,
        connection_id: int | None = None,
        since: int = 0,
    ) -> TunnelMessage:
        """Wait for a received message that matches and return it, without consuming it."""
        return self.loop_thread.run(
            self.client.wait_for(
                match,
                timeout=timeout,
                service_id=service_id,
                stream_id=stream_id,
                connection_id=connection_id,
                since=since,
            )
        )

    def wait_service_ids(self, timeout: float | None = DEFAULT_TIMEOUT) -> tuple[str, ...]:
        """Wait for SERVICE_IDS and return its service ids."""
        return self.loop_thread.run(self.client.wait_service_ids(timeout))

    def wait_closed(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until the WebSocket is closed."""
        self.loop_thread.run(self.client.wait_closed(timeout))

    def ping(self, data: bytes = b"", *, timeout: float | None = DEFAULT_TIMEOUT) -> float:
        """Send a WebSocket ping, wait for its pong; return the round trip in seconds."""
        return self.loop_thread.run(self.client.ping(data, timeout=timeout))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket and join the loop thread; idempotent."""
        if self.loop_thread.running:
            self.loop_thread.run(self.client.close(code, reason))
            self.loop_thread.stop()

    def __iter__(self) -> Iterator[TunnelMessage]:
        """Iterate over received messages until the WebSocket closes."""
        while True:
            try:
                yield self.receive(timeout=None)
            except TunnelClosedError:
                return

    def __enter__(self) -> SyncTunnelClient:
        """Return the client; it is closed on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()

    def __repr__(self) -> str:
        return f"<Sync{self.client!r}>"
