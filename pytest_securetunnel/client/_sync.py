"""``SyncTunnelClient``: the tunnel client for synchronous code, on its own loop thread."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Iterator, Mapping
from types import TracebackType

from .._lifecycle import LoopThread
from ..protocol import ClientMode, ProtocolVersion, TunnelMessage
from ._errors import TunnelClosedError
from ._handshake import HeadersLike, TokenLocation
from ._records import MessageMatcher, MessageRecord
from ._tunnel_client import DEFAULT_TIMEOUT, TunnelClient

__all__ = ["SyncTunnelClient"]


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
