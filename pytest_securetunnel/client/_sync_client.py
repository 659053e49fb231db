"""``SyncTunnelClient``: the tunnel client for synchronous code, on ``websockets.sync``.

It carries out the decisions of :class:`~pytest_securetunnel.protocol.TunnelClientPolicy`
as :class:`TunnelClient` does, with a thread that reads the WebSocket instead of a task.
"""

from __future__ import annotations

import ssl as ssl_module
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TypeVar

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from .._realtime import real_monotonic
from ..protocol import ClientMode, ProtocolVersion, TunnelMessage
from ._client_base import DEFAULT_TIMEOUT, ClientBase, as_version
from ._errors import TunnelClientError, TunnelClosedError
from ._handshake import (
    KEEPALIVE_INTERVAL,
    HeadersLike,
    TokenLocation,
    open_tunnel_websocket_sync,
    tunnel_handshake,
)
from ._records import MessageMatcher

__all__ = ["SyncTunnelClient"]

_T = TypeVar("_T")

#: How often a ping waiting for its pong checks whether the connection has closed.
_PING_SLICE = 0.05


class SyncTunnelClient(ClientBase):
    """A tunnel client for synchronous code: the API of :class:`TunnelClient`, blocking.

    It runs on ``websockets.sync`` with one reader thread of its own, so it works in plain
    tests and where a loop already runs in the calling thread (notebooks, async tests).
    Methods block until done and may be called from any thread; :meth:`close` (or leaving
    ``with``) closes the WebSocket and joins the reader thread. Timeouts run on real time,
    even while a test freezes the clock.
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
        """Wrap an open WebSocket and start reading it; use :meth:`connect` instead."""
        response = websocket.response
        channel_id = response.headers.get("channel-id") if response else None
        super().__init__(mode, version, channel_id, drop_stale=drop_stale)
        self._ws = websocket
        self._changed = threading.Condition()
        self._lock = self._changed
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(
            target=self._read_loop, name=f"SyncTunnelClient {mode.value}", daemon=True
        )
        self._reader.start()

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
        """Connect; the arguments and errors are those of :meth:`TunnelClient.connect`."""
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
        websocket = open_tunnel_websocket_sync(handshake)
        assert websocket.subprotocol is not None  # checked by open_tunnel_websocket_sync
        negotiated = ProtocolVersion.from_subprotocol(websocket.subprotocol)
        client = cls(websocket, mode, negotiated, drop_stale=drop_stale)
        if wait_service_ids:
            try:
                client.wait_service_ids(timeout=open_timeout)
            except BaseException:
                client.close()
                raise
        return client

    # -- receiving -----------------------------------------------------------------------

    def _read_loop(self) -> None:
        next_ping = real_monotonic() + KEEPALIVE_INTERVAL
        try:
            while True:
                try:
                    data = self._ws.recv(timeout=max(0.0, next_ping - real_monotonic()))
                except TimeoutError:
                    self._ws.ping()  # localproxy's keepalive: no pong timeout
                    next_ping = real_monotonic() + KEEPALIVE_INTERVAL
                    continue
                with self._changed:
                    close = self._policy.receive_frame(data)
                    self._changed.notify_all()
                if close is not None:
                    self.error = close.error or TunnelClientError(close.reason)
                    self._ws.close(close.code, close.reason)
                    return
        except ConnectionClosed:
            pass
        except Exception as exc:  # recorded for the caller, as TunnelClient does
            self.error = exc
        finally:
            with self._changed:
                self._policy.connection_closed()
                self._changed.notify_all()

    def _wait(self, check: Callable[[], _T | None], timeout: float | None, what: str) -> _T:
        """``check()`` once it is not ``None``; ``TimeoutError`` or the closed error else."""
        deadline = None if timeout is None else real_monotonic() + timeout
        with self._changed:
            while (result := self._poll(check, what)) is None:
                remaining = None if deadline is None else deadline - real_monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._timeout(what, timeout)
                self._changed.wait(remaining)
            return result

    def receive(self, timeout: float | None = DEFAULT_TIMEOUT) -> TunnelMessage:
        """Return the next received message; see :meth:`TunnelClient.receive`."""
        return self._wait(self._next, timeout, "message")

    def receive_data(
        self,
        service_id: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
        stream_id: int | None = None,
        connection_id: int | None = None,
    ) -> bytes:
        """Return the payload of the next matching DATA message."""
        check = self._next_data(service_id, stream_id, connection_id)
        return self._wait(check, timeout, "DATA message").payload

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
        check = self._first_match(match, service_id, stream_id, connection_id, since)
        return self._wait(check, timeout, "matching message")

    def wait_service_ids(self, timeout: float | None = DEFAULT_TIMEOUT) -> tuple[str, ...]:
        """Wait for SERVICE_IDS and return its service ids (``()`` at once on V1)."""
        if not self.version.has_service_ids:
            return ()  # V1 has no SERVICE_IDS message.
        return self._wait(lambda: self.service_ids, timeout, "SERVICE_IDS message")

    def wait_closed(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until the WebSocket is closed (by either side)."""
        self._reader.join(timeout)
        if self._reader.is_alive():
            raise TimeoutError(f"the tunnel WebSocket did not close within {timeout} s")

    def __iter__(self) -> Iterator[TunnelMessage]:
        """Iterate over received messages until the WebSocket closes."""
        while True:
            try:
                yield self.receive(timeout=None)
            except TunnelClosedError:
                return

    # -- sending -------------------------------------------------------------------------

    def _send_all(self, messages: list[TunnelMessage], enforce_limit: bool = True) -> None:
        frames = self._policy.encode(messages, enforce_limit)
        with self._send_lock:
            for message, frame in zip(messages, frames, strict=True):
                with self._changed:
                    if self.closed:
                        raise self._closed_error(f"cannot send {message!r}")
                    self._policy.sending(message)
                    self._changed.notify_all()
                try:
                    self._ws.send(frame)
                except ConnectionClosed as exc:
                    raise self._closed_error(f"cannot send {message!r}") from exc

    def send_message(self, message: TunnelMessage, *, enforce_payload_limit: bool = True) -> None:
        """Send one message as it is; see :meth:`TunnelClient.send_message`."""
        self._send_all([message], enforce_payload_limit)

    def send_bytes(self, data: bytes) -> None:
        """Send raw bytes as one binary WebSocket message (not logged, not tracked)."""
        try:
            self._ws.send(data)
        except ConnectionClosed as exc:
            raise self._closed_error("cannot send raw bytes") from exc

    def start_stream(self, service_id: str = "", connection_id: int = 1) -> int:
        """Send STREAM_START; return the new stream id (see :meth:`TunnelClient.start_stream`)."""
        message = self._stream_start(service_id, connection_id)
        self.send_message(message)
        return message.stream_id

    def start_connection(
        self, stream_id: int | None = None, connection_id: int | None = None, service_id: str = ""
    ) -> int:
        """Send CONNECTION_START (V3); return the connection id."""
        message = self._connection_start(stream_id, connection_id, service_id)
        self.send_message(message)
        return message.connection_id

    def send(
        self,
        data: bytes,
        stream_id: int | None = None,
        service_id: str = "",
        connection_id: int = 1,
    ) -> None:
        """Send ``data`` as DATA messages of at most 64512 bytes each."""
        self._send_all(self._data(data, stream_id, service_id, connection_id))

    def reset_stream(self, stream_id: int | None = None, service_id: str = "") -> None:
        """Send STREAM_RESET for the active (or given) stream of ``service_id``."""
        self.send_message(self._stream_reset(stream_id, service_id))

    def reset_connection(
        self, stream_id: int | None = None, connection_id: int = 1, service_id: str = ""
    ) -> None:
        """Send CONNECTION_RESET (V3) for a connection of the active (or given) stream."""
        self.send_message(self._connection_reset(stream_id, connection_id, service_id))

    def ping(self, data: bytes = b"", *, timeout: float | None = DEFAULT_TIMEOUT) -> float:
        """Send a WebSocket ping, wait for its pong; return the round trip in seconds."""
        started = real_monotonic()
        try:
            pong = self._ws.ping(data)
        except ConnectionClosed as exc:
            raise self._closed_error("cannot ping") from exc
        # Wait for the pong or the end of the connection, whichever comes first.
        deadline = None if timeout is None else started + timeout
        while True:
            left = _PING_SLICE if deadline is None else deadline - real_monotonic()
            if pong.wait(min(_PING_SLICE, max(left, 0.0))):
                return real_monotonic() - started
            if self.closed:
                raise self._closed_error("no pong: the connection closed")
            if deadline is not None and real_monotonic() >= deadline:
                raise TimeoutError(f"no pong within {timeout} s")

    # -- closing -------------------------------------------------------------------------

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the WebSocket and join the reader thread; idempotent."""
        self._ws.close(code, reason)
        if threading.current_thread() is not self._reader:
            self._reader.join()

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
