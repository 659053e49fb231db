"""Synchronous facades of :class:`LocalProxy` and :class:`EchoPeer`, on their own loop thread."""

from __future__ import annotations

import ssl as ssl_module
from types import TracebackType
from typing import Any

from .._lifecycle import Lifecycle, LoopThread
from ..protocol import ClientMode, ProtocolVersion
from ._echo import EchoPeer
from ._local_proxy import LocalProxy
from ._mapping import ServiceMapping
from ._records import MessageRecord
from ._tunnel_client import DEFAULT_TIMEOUT, TunnelClient

__all__ = ["SyncEchoPeer", "SyncLocalProxy"]


class SyncLocalProxy(Lifecycle["SyncLocalProxy"]):
    """A :class:`LocalProxy` for synchronous code, running on its own loop thread.

    Same arguments as :class:`LocalProxy`; use ``with SyncLocalProxy(...) as proxy:`` or
    :meth:`start` / :meth:`stop`. Stopping joins the thread.
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
        self.proxy = LocalProxy(
            endpoint,
            token,
            mode,
            services,
            version=version,
            client_token=client_token,
            ssl=ssl,
            bind_host=bind_host,
            connect_timeout=connect_timeout,
            open_timeout=open_timeout,
        )
        """The async proxy (use it only from coroutines run on its loop thread)."""
        self._thread: LoopThread | None = None

    def start(self) -> SyncLocalProxy:
        """Start the loop thread and the proxy; see :meth:`LocalProxy.start`."""
        if self._thread is not None:
            raise RuntimeError("the SyncLocalProxy was already started")
        self._thread, _ = LoopThread.start_with(
            f"SyncLocalProxy {self.proxy.mode.value}", self.proxy.start()
        )
        return self

    def stop(self) -> None:
        """Stop the proxy and join its loop thread; idempotent."""
        if self._thread is not None and self._thread.running:
            self._thread.run(self.proxy.stop())
            self._thread.stop()

    def wait_closed(self, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Wait until the proxy has ended (its WebSocket closed)."""
        if self._thread is None:
            raise RuntimeError("the SyncLocalProxy is not started")
        self._thread.run(self.proxy.wait_closed(timeout))

    @property
    def ports(self) -> dict[str, int]:
        """Source mode: service id -> bound local port."""
        return self.proxy.ports

    @property
    def port(self) -> int:
        """Source mode: the bound port of the only service."""
        return self.proxy.port

    @property
    def open_connections(self) -> int:
        """Number of local TCP connections currently carried by the tunnel."""
        return self.proxy.open_connections

    @property
    def closed(self) -> bool:
        """Whether the proxy has ended."""
        return self.proxy.closed

    @property
    def error(self) -> Exception | None:
        """The fatal error that ended the proxy, if any."""
        return self.proxy.error

    @property
    def messages(self) -> list[MessageRecord]:
        """The tunnel messages sent and received so far."""
        return [] if self.proxy.client is None else self.proxy.client.messages


class SyncEchoPeer:
    """An :class:`EchoPeer` for synchronous code, running on its own loop thread."""

    def __init__(self, peer: EchoPeer, thread: LoopThread) -> None:
        """Wrap a started peer running on ``thread``; use :meth:`connect` instead."""
        self.peer = peer
        """The async echo peer."""
        self._thread = thread

    @classmethod
    def connect(
        cls,
        endpoint: str,
        token: str | None,
        mode: ClientMode | str = ClientMode.DESTINATION,
        **options: Any,
    ) -> SyncEchoPeer:
        """Connect and start echoing; ``options`` as for :meth:`TunnelClient.connect`."""
        thread, peer = LoopThread.start_with(
            "SyncEchoPeer", EchoPeer.connect(endpoint, token, mode, **options)
        )
        return cls(peer, thread)

    @property
    def client(self) -> TunnelClient:
        """The async tunnel client that echoes."""
        return self.peer.client

    @property
    def echoed_messages(self) -> int:
        """How many DATA messages were echoed."""
        return self.peer.echoed_messages

    @property
    def echoed_bytes(self) -> int:
        """How many payload bytes were echoed."""
        return self.peer.echoed_bytes

    def stop(self) -> None:
        """Close the client and join the loop thread; idempotent."""
        if self._thread.running:
            self._thread.run(self.peer.stop())
            self._thread.stop()

    def __enter__(self) -> SyncEchoPeer:
        """Return the peer; it stops on exit."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the peer."""
        self.stop()
