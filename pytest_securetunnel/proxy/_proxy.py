"""``TunnelProxy``: the data-plane server, usable from sync code, async code and notebooks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ssl
import threading
import warnings
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

from pytest_securetunnel._errors import BackgroundError
from pytest_securetunnel._lifecycle import AsyncLifecycle, BackgroundErrors, LoopThread
from pytest_securetunnel.protocol import MessageType, TunnelMessage
from pytest_securetunnel.service import Mode, SecureTunnelFake, Tunnel

from ._core import ProxyCore
from ._events import EventLog, EventMatch, ProxyEvent
from ._peer import Delivery, Peer
from ._tls import TlsFiles, TlsMaterial

__all__ = ["Mode", "TunnelProxy", "TunnelProxyError"]

_T = TypeVar("_T")
_STOP_GRACE: Final = 0.2  # seconds stop() waits for closing handshakes before aborting


class TunnelProxyError(BackgroundError):
    """Errors that happened inside the proxy (bugs), re-raised in the caller's thread.

    ``errors`` lists them; the first is also the ``__cause__``.
    """

    component = "pytest-securetunnel's proxy"


def _tunnel_id(tunnel: str | Tunnel) -> str:
    return tunnel if isinstance(tunnel, str) else tunnel.tunnel_id


class TunnelProxy(AsyncLifecycle["TunnelProxy"], BackgroundErrors):
    """A fake AWS IoT Secure Tunneling data plane (``/tunnel`` WebSocket) for a fake.

    ``with TunnelProxy(fake) as proxy:`` runs it on its own event loop in a background
    thread (works in scripts, notebooks and under a running loop); ``async with`` runs it
    on the caller's loop. It listens on ephemeral ports of 127.0.0.1: ``ws://`` always,
    and ``wss://`` too when ``tls`` is true.

    As on AWS, the data endpoint is regional: :attr:`endpoint` and :attr:`tls_endpoint`
    admit the tokens of tunnels opened in the fake's default region (:attr:`region`);
    :meth:`endpoint_for` and :meth:`tls_endpoint_for` give another region's endpoint (its
    own ports, opened on first use).

    :param fake: The control plane whose tokens, tunnels and connection states it uses.
    :param tls: Also serve ``wss://`` with a trustme certificate for 127.0.0.1 and localhost.
    :param ca: A ``trustme.CA`` to issue the certificate (default: one per process).
    :param delivery: Default :class:`Delivery` for every connection (fault injection).
    :param permessage_deflate: Accept compression when a client offers it. It is never
        forced; note that ``websockets`` clients offer it unless told
        ``compression=None``, and it cuts relay throughput many times.
    :param close_timeout: Seconds to wait for a client's closing handshake.
    :param max_events: How many events :attr:`events` keeps, newest (``None``: all).
    :param max_event_bytes: Payload bytes the kept events may hold in total; older events
        go first (``None``: no limit). Bulk transfers stay cheap in memory.
    """

    def __init__(
        self,
        fake: SecureTunnelFake,
        *,
        tls: bool = True,
        ca: Any | None = None,
        delivery: Delivery | None = None,
        permessage_deflate: bool = True,
        close_timeout: float = 1.0,
        max_events: int | None = 10_000,
        max_event_bytes: int | None = 16 * 2**20,
    ) -> None:
        """Configure the proxy; :meth:`start` (or a ``with`` block) runs it."""
        self.fake = fake
        self.tls = tls
        self.permessage_deflate = permessage_deflate
        self.close_timeout = close_timeout
        self._delivery = delivery or Delivery()
        self._tls = TlsMaterial(ca) if tls else None
        self._client_context: ssl.SSLContext | None = None
        self._events = EventLog(max_events, max_event_bytes)
        self._core: ProxyCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: LoopThread | None = None
        self._ports: tuple[int, int | None] | None = None
        self._files: TlsFiles | None = None
        self._region = fake.default_region
        self._region_ports: dict[str, tuple[int, int | None]] = {}
        self._region_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "stopped" if self._ports is None else self.endpoint
        return f"<TunnelProxy {state} tls={self.tls}>"

    # -- lifecycle -------------------------------------------------------------------

    error_type = TunnelProxyError

    def start(self) -> TunnelProxy:
        """Run the proxy on its own event loop in a background thread; return it."""
        if self._loop is not None:
            raise RuntimeError("TunnelProxy is already running; stop() it first")
        runner = LoopThread("securetunnel-proxy", self._record_error).start()
        try:
            runner.run(self._open())
        except BaseException:
            runner.stop()
            raise
        self._runner = runner
        return self

    def stop(self) -> None:
        """Close every connection and the servers, join the thread, raise recorded errors."""
        runner = self._runner
        if runner is not None:
            if runner.in_thread():
                raise RuntimeError("the proxy cannot be stopped from its own thread")
            timeout = self.close_timeout + 10.0
            try:
                runner.run(self._close(), timeout)
            finally:
                runner.stop(timeout)
                self._runner = None
        elif self._loop is not None:
            raise RuntimeError("this TunnelProxy runs on an event loop: use `await stop_async()`")
        self.check()

    async def start_async(self) -> TunnelProxy:
        """Run the proxy on the running event loop (the caller's); return it."""
        if self._loop is not None:
            raise RuntimeError("TunnelProxy is already running; stop it first")
        await self._open()
        return self

    async def stop_async(self) -> None:
        """Stop a proxy started with :meth:`start_async`; raise recorded errors."""
        if self._runner is not None:
            raise RuntimeError("this TunnelProxy runs in a thread: use stop()")
        if self._loop is not None:
            await self._close()
        self.check()

    async def astart(self) -> TunnelProxy:
        """Deprecated name of :meth:`start_async`."""
        warnings.warn(
            "TunnelProxy.astart() is deprecated: use start_async()", DeprecationWarning, 2
        )
        return await self.start_async()

    async def astop(self) -> None:
        """Deprecated name of :meth:`stop_async`."""
        warnings.warn("TunnelProxy.astop() is deprecated: use stop_async()", DeprecationWarning, 2)
        await self.stop_async()

    async def _open(self) -> None:
        core = ProxyCore(
            self.fake, self._events, delivery=self._delivery, on_error=self._record_error
        )
        context, files = None, None
        if self._tls is not None:
            context, files = self._tls.server_context(), TlsFiles(self._tls.ca_pem)
        try:
            ports = await core.listen(
                context,
                deflate=self.permessage_deflate,
                close_timeout=self.close_timeout,
                region=self.fake.default_region,
            )
        except BaseException:
            if files is not None:
                files.remove()
            raise
        self._core, self._loop, self._ports = core, asyncio.get_running_loop(), ports
        self._files = files
        self._region = self.fake.default_region

    async def _close(self) -> None:
        core = self._core
        assert core is not None
        try:
            await core.shutdown(min(self.close_timeout, _STOP_GRACE))
        except Exception as exc:
            self._record_error(exc)
        finally:
            if self._files is not None:
                self._files.remove()
            self._files = None
            self._core, self._loop, self._ports = None, None, None
            with self._region_lock:
                self._region_ports.clear()

    # -- errors ------------------------------------------------------------------------

    def _record_error(self, error: BaseException) -> None:
        super()._record_error(error)
        self._events.record("error", error=error, reason=f"{type(error).__name__}: {error}")

    # -- addresses and TLS -------------------------------------------------------------

    def _require_ports(self) -> tuple[int, int | None]:
        if self._ports is None:
            raise RuntimeError("TunnelProxy is not running: start() it or use `with`")
        return self._ports

    def _require_tls_port(self) -> int:
        port = self._require_ports()[1]
        if port is None:
            raise RuntimeError("this TunnelProxy was created with tls=False")
        return port

    def _ports_for(self, region: str | None) -> tuple[int, int | None]:
        ports = self._require_ports()
        if region is None or region == self._region:
            return ports
        self.fake.check_region(region)
        with self._region_lock:
            found = self._region_ports.get(region)
            if found is None:
                core = self._core
                if core is None:
                    raise RuntimeError("TunnelProxy is not running: start() it or use `with`")
                found = self._region_ports[region] = core.add_region(region)
            return found

    def _tls_port_for(self, region: str | None) -> int:
        self._require_tls_port()
        port = self._ports_for(region)[1]
        assert port is not None
        return port

    @property
    def port(self) -> int:
        """Port of the plain ``ws://`` server."""
        return self._require_ports()[0]

    @property
    def tls_port(self) -> int:
        """Port of the ``wss://`` server."""
        return self._require_tls_port()

    @property
    def region(self) -> str:
        """The region of :attr:`endpoint`: the fake's default region when the proxy started."""
        return self._region

    @property
    def endpoint(self) -> str:
        """``ws://127.0.0.1:PORT``, the data endpoint of :attr:`region`."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def tls_endpoint(self) -> str:
        """``wss://localhost:PORT`` (the certificate is valid for localhost and 127.0.0.1).

        The data endpoint of :attr:`region`.
        """
        return f"wss://localhost:{self.tls_port}"

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT`` of the TLS server, for the C++ local proxy's ``-e``.

        localproxy: ``-e`` takes ``host[:port]`` only and always speaks TLS; it checks
        the IP SAN for 127.0.0.1 (pass :attr:`ca_dir` as ``-c``).
        """
        return f"127.0.0.1:{self.tls_port}"

    def endpoint_for(self, region: str) -> str:
        """``ws://127.0.0.1:PORT``, the data endpoint of ``region``.

        As on AWS, each region has its own data endpoint, which admits only the tokens of
        tunnels opened in that region; any other token is refused as unknown. A region's
        ports are opened on first use and kept until the proxy stops. Raises
        :class:`~pytest_securetunnel.service.UnknownRegionError` for a region the fake
        does not serve.
        """
        return f"ws://127.0.0.1:{self._ports_for(region)[0]}"

    def tls_endpoint_for(self, region: str) -> str:
        """``wss://localhost:PORT``, the TLS data endpoint of ``region`` (see
        :meth:`endpoint_for`).
        """
        return f"wss://localhost:{self._tls_port_for(region)}"

    def host_port_for(self, region: str) -> str:
        """``127.0.0.1:PORT`` of ``region``'s TLS data endpoint, for the local proxy's ``-e``."""
        return f"127.0.0.1:{self._tls_port_for(region)}"

    def url(self, mode: Mode, *, tls: bool = False, region: str | None = None) -> str:
        """The full handshake URL: ``ws[s]://HOST:PORT/tunnel?local-proxy-mode=MODE``.

        ``region`` picks that region's endpoint (default: :attr:`region`'s).
        """
        if region is not None:
            base = self.tls_endpoint_for(region) if tls else self.endpoint_for(region)
        else:
            base = self.tls_endpoint if tls else self.endpoint
        return f"{base}/tunnel?local-proxy-mode={mode}"

    def _require_files(self) -> TlsFiles:
        self._require_tls_port()
        assert self._files is not None
        return self._files

    @property
    def ca_file(self) -> str:
        """Path of the CA certificate (PEM), e.g. for ``SSL_CERT_FILE``."""
        return self._require_files().ca_file

    @property
    def ca_dir(self) -> str:
        """OpenSSL hashed directory holding the CA, for the C++ local proxy's ``-c``."""
        return self._require_files().ca_dir

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate, PEM bytes."""
        if self._tls is None:
            raise RuntimeError("this TunnelProxy was created with tls=False")
        return self._tls.ca_pem

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """A client ``SSLContext`` that trusts the proxy's CA (for ``wss://`` clients)."""
        if self._tls is None:
            raise RuntimeError("this TunnelProxy was created with tls=False")
        if self._client_context is None:
            self._client_context = self._tls.client_context()
        return self._client_context

    # -- events ------------------------------------------------------------------------

    @property
    def events(self) -> list[ProxyEvent]:
        """The event log, oldest first (see :class:`ProxyEvent` for the kinds)."""
        return self._events.snapshot()

    @property
    def last_seq(self) -> int:
        """Sequence number of the latest event; pass it as ``after=`` to wait for newer."""
        return self._events.last_seq

    def clear_events(self) -> None:
        """Forget the logged events."""
        self._events.clear()

    def messages(
        self,
        kind: Literal["received", "sent", "dropped"] = "received",
        *,
        tunnel: str | Tunnel | None = None,
        mode: Mode | None = None,
    ) -> list[TunnelMessage]:
        """The messages of ``kind`` events, optionally of one tunnel and side."""
        tunnel_id = None if tunnel is None else _tunnel_id(tunnel)
        return [
            e.message
            for e in self._events.snapshot()
            if e.kind == kind
            and e.message is not None
            and (tunnel_id is None or e.tunnel_id == tunnel_id)
            and (mode is None or e.mode == mode)
        ]

    def wait_for(
        self,
        match: EventMatch,
        timeout: float = 5.0,
        *,
        after: int = 0,
        tunnel: str | Tunnel | None = None,
        mode: Mode | None = None,
        message_type: MessageType | None = None,
        code: int | None = None,
    ) -> ProxyEvent:
        """Block until an event (``seq > after``) matches ``match`` and the filters.

        ``match`` is an event kind such as ``"disconnected"`` or a predicate. The whole
        log is searched, so this returns the first match, possibly one that happened
        before the action you are waiting on: to wait for what an action causes, take
        ``mark = proxy.last_seq`` before it and pass ``after=mark`` (an event's ``seq``
        works too). Raises ``TimeoutError`` listing the latest events if none matches
        within ``timeout`` seconds (real time, whatever the fake's clock says).
        """
        if self._loop is not None and self._runner is None and _running_loop() is self._loop:
            raise RuntimeError(
                "wait_for() would block the proxy's own event loop: "
                "use `await proxy.wait_for_async(...)`"
            )
        return self._events.wait_for(
            match,
            timeout,
            after=after,
            tunnel_id=None if tunnel is None else _tunnel_id(tunnel),
            mode=mode,
            message_type=message_type,
            code=code,
        )

    async def wait_for_async(
        self,
        match: EventMatch,
        timeout: float = 5.0,
        *,
        after: int = 0,
        tunnel: str | Tunnel | None = None,
        mode: Mode | None = None,
        message_type: MessageType | None = None,
        code: int | None = None,
    ) -> ProxyEvent:
        """Like :meth:`wait_for` (``after=`` included), awaiting on the caller's loop."""
        return await self._events.wait_for_async(
            match,
            timeout,
            after=after,
            tunnel_id=None if tunnel is None else _tunnel_id(tunnel),
            mode=mode,
            message_type=message_type,
            code=code,
        )

    # -- fault injection ---------------------------------------------------------------

    def _on_loop(self, function: Callable[[ProxyCore], _T]) -> _T:
        core, loop = self._core, self._loop
        if core is None or loop is None:
            raise RuntimeError("TunnelProxy is not running: start() it or use `with`")
        if _running_loop() is loop:
            return function(core)
        result: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(function(core))
            except BaseException as exc:
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout=10.0)

    def drop_connection(self, tunnel: str | Tunnel, mode: Mode | None = None) -> int:
        """Drop a side's connection (or both) without a close frame; return how many.

        Raises ``LookupError`` if no such connection is open.
        """
        tunnel_id = _tunnel_id(tunnel)
        return self._on_loop(lambda core: core.faults.drop(tunnel_id, mode))

    def send_session_reset(self, tunnel: str | Tunnel, mode: Mode | None = None) -> int:
        """Send SESSION_RESET to a side (or both), as on a service-side error."""
        tunnel_id = _tunnel_id(tunnel)
        return self._on_loop(
            lambda core: core.faults.inject(
                tunnel_id, mode, "session-reset", lambda _: [TunnelMessage.session_reset()]
            )
        )

    def send_stream_reset(
        self,
        tunnel: str | Tunnel,
        mode: Mode | None = None,
        *,
        stream_id: int | None = None,
        service_id: str = "",
    ) -> int:
        """Send STREAM_RESET to a side (or both): for ``stream_id``, or every active stream."""
        tunnel_id = _tunnel_id(tunnel)

        def build(peer: Peer) -> list[TunnelMessage]:
            if stream_id is None:
                return peer.conn.stream_reset_messages()
            return [TunnelMessage.stream_reset(stream_id, service_id)]

        return self._on_loop(
            lambda core: core.faults.inject(tunnel_id, mode, "stream-reset", build)
        )

    def set_close_delay(self, seconds: float | None, *, tunnel: str | Tunnel | None = None) -> None:
        """Close connections ``seconds`` late after CloseTunnel or expiry (``None``: promptly).

        AWS says a tunnel's clients "might not be closed immediately" after CloseTunnel;
        use this to test an agent that must cope. For one ``tunnel``, or for every tunnel
        without its own setting. Until the delay has passed, the live connections stay
        open and still relay data, while the tunnel reads CLOSED and new handshakes are
        refused; then both sides are closed with 1000 as usual. ``delete=True`` and
        ``fake.reset()`` still close at once. A ``fault`` event (``close-delay``) is
        logged for each connection when the delay starts.
        """
        tunnel_id = None if tunnel is None else _tunnel_id(tunnel)
        self._on_loop(lambda core: core.faults.set_close_delay(tunnel_id, seconds))

    def set_delivery(
        self, tunnel: str | Tunnel, delivery: Delivery | None, *, mode: Mode | None = None
    ) -> None:
        """Shape delivery to a tunnel's side (``mode``) or both; ``None`` restores default.

        Applies to live connections and to later ones on that side.
        """
        tunnel_id = _tunnel_id(tunnel)
        self._on_loop(lambda core: core.faults.set_delivery(tunnel_id, mode, delivery))


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
