"""``NotifyBroker``: AWS IoT Core's tunnel notify path for a fake, over real MQTT."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any, Final

from pytest_securetunnel._errors import BackgroundError
from pytest_securetunnel._lifecycle import BackgroundErrors, Lifecycle, LoopThread
from pytest_securetunnel.service import Notification, SecureTunnelFake

from ._certs import DeviceCertificate, DeviceCertificates
from ._core import MAX_PACKET_SIZE, BrokerCore, Message, Session
from ._external import ExternalPublisher, parse_url

__all__ = ["MqttBrokerError", "NotifyBroker"]

_STOP_GRACE: Final = 0.5  # seconds stop() lets clients read their DISCONNECT
_CLOSE_GRACE: Final = 2.0  # seconds a closing connection may take to flush before abort


class MqttBrokerError(BackgroundError):
    """Errors that happened inside the broker's thread (bugs), re-raised in the caller's.

    ``errors`` lists them; the first is also the ``__cause__``.
    """

    component = "pytest-securetunnel's MQTT broker"


class _Connection(asyncio.Protocol):
    """The asyncio side of one client connection; the :class:`Session` decides.

    TLS is started here (``loop.start_tls``) rather than by the server, so that a
    connection still in its handshake is known and can be aborted when the broker stops.
    """

    def __init__(self, broker: NotifyBroker, tls: bool) -> None:
        self.broker = broker
        self.tls = tls
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.last_seen = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._early: list[bytes] = []
        self._handshake: asyncio.Task[None] | None = None
        self._done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.broker._connections.add(self)
        self.last_seen = self._loop.time()
        self._timer = self._loop.call_later(self.broker.connect_timeout, self._check)
        if self.tls:
            transport.pause_reading()  # start_tls resumes it, on the TLS layer
            self._handshake = self._loop.create_task(self._start_tls(transport))
        else:
            self._open(None)

    async def _start_tls(self, raw: asyncio.Transport) -> None:
        context = self.broker._tls_context
        assert context is not None
        try:
            secure = await self._loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self.broker.connect_timeout,
            )
        except (OSError, asyncio.TimeoutError):  # ssl.SSLError is an OSError
            raw.abort()
            self._cleanup()
            return
        except asyncio.CancelledError:
            raw.abort()
            self._cleanup()
            raise
        if secure is None:  # the connection was lost during the handshake
            raw.abort()
            self._cleanup()
            return
        self.transport = secure
        ssl_object = secure.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        certs = self.broker._certs
        self._open(certs.thing_for(der) if certs is not None else None)

    def _open(self, thing: str | None) -> None:
        self.session = Session(
            self.broker._core, self._send, self._close, thing_name=thing, tls=self.tls
        )
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        session = self.session
        if session is None:
            self._early.append(data)
            return
        self.last_seen = self._loop.time()
        was_connected = session.connected
        try:
            session.data_received(data)
        except Exception as exc:
            self.broker._record_error(exc)
            self.abort()
            return
        if not was_connected and session.connected:
            self._schedule_keep_alive(session.keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._done:
            return
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.broker._connections.discard(self)
        if self.session is not None:
            try:
                self.session.connection_lost()
            except Exception as error:
                self.broker._record_error(error)

    def _send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.broker.max_write_buffer:
            # A client that stops reading must not make the broker buffer without end.
            self.abort()

    def _close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(_CLOSE_GRACE, self.abort)

    def abort(self) -> None:
        """Drop the connection now (during a TLS handshake too)."""
        if self._handshake is not None and not self._handshake.done():
            self._handshake.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _schedule_keep_alive(self, keep_alive: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if keep_alive:
            self._timer = self._loop.call_later(keep_alive * 1.5, self._check)

    def _check(self) -> None:
        self._timer = None
        session = self.session
        if session is None:
            self.abort()  # TLS handshake not done within connect_timeout
            return
        if session.closed:
            return
        if not session.connected:
            session.refusal = f"no CONNECT within {self.broker.connect_timeout} s"
            self.abort()
            return
        limit = session.keep_alive * 1.5
        idle = self._loop.time() - self.last_seen
        if idle >= limit:
            session.keep_alive_expired()
        else:
            self._timer = self._loop.call_later(limit - idle, self._check)


class NotifyBroker(Lifecycle["NotifyBroker"], BackgroundErrors):
    """An MQTT broker on 127.0.0.1 that carries a fake's tunnel notifications to devices.

    Every notification the fake makes (OpenTunnel with a destination thing, a rotation of
    the destination token) is published on ``$aws/things/THING/tunnels/notify`` with
    AWS's payload, QoS 1, not retained. Devices connect like they do to AWS IoT Core:
    MQTT 3.1.1 or 5 over TLS with a client certificate (:meth:`client_cert`, port
    :attr:`tls_port`), or over plain TCP (:attr:`port`) where the client id stands for
    the thing name.

    ``with NotifyBroker(fake) as broker:`` runs it on its own event loop in a background
    thread (scripts, notebooks and async tests alike); errors inside it are raised when it
    stops.

    :param fake: The control plane whose notifications are published.
    :param url: Publish into a broker you run instead (``mqtt://127.0.0.1:1883`` or
        ``mqtts://...``); no broker is started then.
    :param host: Address to listen on.
    :param port: Plain-TCP port (0: a free port).
    :param tls_port: TLS port (0: a free port); ``tls=False`` serves plain TCP only.
    :param authorization: Apply the recommended device policy: a device may subscribe only
        to its own thing's notify topic, and none may publish to a notify topic.
    :param ca: A ``trustme.CA`` for the server and device certificates (default: a new one).
    :param ca_file: The CA file to verify an ``mqtts://`` broker given by ``url``.
    :param connect_timeout: Seconds a client has to send CONNECT (and to finish TLS).
    :param max_packet_size: Largest packet accepted (AWS IoT Core: 128 KB).
    """

    def __init__(
        self,
        fake: SecureTunnelFake,
        *,
        url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_port: int = 0,
        tls: bool = True,
        authorization: bool = True,
        ca: Any | None = None,
        ca_file: str | None = None,
        connect_timeout: float = 10.0,
        max_packet_size: int = MAX_PACKET_SIZE,
    ) -> None:
        """Configure the broker; :meth:`start` (or a ``with`` block) runs it."""
        self.fake = fake
        self.url = url
        self.tls = tls and url is None
        self.authorization = authorization
        self.connect_timeout = connect_timeout
        self.max_write_buffer = 4 * 2**20
        self._host = host
        self._want_ports = (port, tls_port)
        self._ca = ca
        self._core = BrokerCore(authorization=authorization, max_packet_size=max_packet_size)
        self._certs: DeviceCertificates | None = None
        self._tls_context: ssl.SSLContext | None = None
        self._external = ExternalPublisher(url, ca_file=ca_file) if url is not None else None
        self._external_url = parse_url(url) if url is not None else None
        self._connections: set[_Connection] = set()
        self._listeners: list[socket.socket] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._ports: tuple[int, int | None] | None = None
        self._runner: LoopThread | None = None
        self._unsubscribe: Any = None

    def __repr__(self) -> str:
        if self.url is not None:
            return f"<NotifyBroker publishing into {self.url}>"
        if self._ports is None:
            return "<NotifyBroker stopped>"
        return f"<NotifyBroker mqtt://{self.host}:{self.port} tls_port={self.tls_port}>"

    # -- lifecycle -----------------------------------------------------------------------

    error_type = MqttBrokerError

    @property
    def running(self) -> bool:
        """Whether :meth:`start` ran and :meth:`stop` did not."""
        return self._unsubscribe is not None

    def start(self) -> NotifyBroker:
        """Start listening (or connect to ``url``) and publish the fake's notifications."""
        if self.running:
            raise RuntimeError("NotifyBroker is already running; stop() it first")
        if self._external is not None:
            self._external.start()
            self._unsubscribe = self.fake.notifications.subscribe(self._publish_external)
            return self
        runner = self._runner = LoopThread("securetunnel-mqtt", self._record_error).start()
        try:
            runner.run(self._open())
        except BaseException:
            self._end_thread()
            raise
        self._unsubscribe = self.fake.notifications.subscribe(self._publish_local)
        return self

    def stop(self) -> None:
        """Disconnect every client, close the listeners, end the thread; raise its errors."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        try:
            if self._external is not None:
                if unsubscribe is not None:
                    self._external.stop()
            elif self._runner is not None:
                try:
                    self._runner.run(self._close(), timeout=_STOP_GRACE + _CLOSE_GRACE + 10.0)
                finally:
                    self._end_thread()
        finally:
            if self._certs is not None:
                self._certs.remove()
                self._certs = None
        self.check()

    # -- where to connect ----------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address clients connect to."""
        if self._external_url is not None:
            return self._external_url.host
        return self._host

    @property
    def port(self) -> int:
        """The plain-TCP port (the external broker's port when ``url`` is given)."""
        if self._external_url is not None:
            return self._external_url.port
        return self._require_ports()[0]

    @property
    def tls_port(self) -> int | None:
        """The TLS port (mutual TLS, like AWS IoT Core's 8883), ``None`` without TLS."""
        if self._external_url is not None:
            return None
        return self._require_ports()[1]

    @property
    def ca_file(self) -> str | None:
        """The CA file that verifies the broker's certificate (``None`` without TLS)."""
        return self._certs.ca_file if self._certs is not None else None

    def client_cert(self, thing_name: str) -> DeviceCertificate:
        """A device certificate and key for ``thing_name`` (files), attached to the thing.

        A client presenting it on :attr:`tls_port` acts for ``thing_name``.
        """
        if self._certs is None:
            where = "an external broker" if self.url is not None else "a broker without TLS"
            raise RuntimeError(
                f"client_cert() needs the embedded broker with TLS, running; this is {where}"
                if self.running
                else "client_cert() needs a running broker: start() it first"
            )
        return self._certs.issue(thing_name)

    def wait_for_subscriber(self, thing_name: str, timeout: float = 5.0, count: int = 1) -> None:
        """Block until ``count`` clients subscribe to ``thing_name``'s notify topic.

        A notification is not retained: a device that subscribes after it is published
        never gets it (as with AWS IoT Core), so tests wait for the agent first.
        """
        if self._external is not None:
            raise RuntimeError(
                "wait_for_subscriber() cannot see an external broker's subscriptions; wait "
                "for your agent's own signal instead"
            )
        topic = f"$aws/things/{thing_name}/tunnels/notify"
        if not self._core.wait_for_subscribers(topic, count, timeout):
            try:
                clients = {
                    s.client_id: sorted(s.subscriptions) for s in list(self._core.sessions.values())
                }
            except RuntimeError:
                clients = {}
            raise TimeoutError(
                f"no client subscribed to {topic!r} within {timeout} s; connected clients and "
                f"their subscriptions: {clients or 'none'}"
            )

    def _require_ports(self) -> tuple[int, int | None]:
        if self._ports is None:
            raise RuntimeError("the NotifyBroker is not running: start() it first")
        return self._ports

    # -- inside the loop -----------------------------------------------------------------

    async def _open(self) -> None:
        tls_port = None
        try:
            port = await self._listen(self._want_ports[0], tls=False)
            if self.tls:
                self._certs = DeviceCertificates(self._ca)
                self._tls_context = self._certs.server_context()
                tls_port = await self._listen(self._want_ports[1], tls=True)
        except BaseException:
            await self._close()
            raise
        self._ports = (port, tls_port)

    async def _listen(self, port: int, *, tls: bool) -> int:
        # Our own accept loop (not loop.create_server): every accepted socket is ours
        # from the start, so stop() can close them all (asyncio's Server drops a socket
        # accepted just before close(): python/cpython#79536).
        loop = asyncio.get_running_loop()
        family, kind, proto, _, address = socket.getaddrinfo(
            self._host, port, type=socket.SOCK_STREAM
        )[0]
        listener = socket.socket(family, kind, proto)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listeners.append(listener)
        loop.add_reader(listener.fileno(), self._accept, loop, listener, tls)
        port_number: int = listener.getsockname()[1]
        return port_number

    def _accept(self, loop: asyncio.AbstractEventLoop, listener: socket.socket, tls: bool) -> None:
        for _ in range(128):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # e.g. the client reset before accept (ECONNABORTED)
            conn.setblocking(False)
            task = loop.create_task(self._adopt(conn, tls))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _adopt(self, conn: socket.socket, tls: bool) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: _Connection(self, tls), conn
            )
        except BaseException:
            conn.close()
            raise

    async def _close(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in self._listeners:
            loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners.clear()
        # Sockets already accepted become connections (a step away), then are closed.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in list(self._connections):
            if connection.session is not None:
                connection.session.server_shutdown()
        deadline = loop.time() + _STOP_GRACE
        while self._connections and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self._connections):
            connection.abort()
        while self._connections:
            await asyncio.sleep(0)

    def _end_thread(self) -> None:
        runner, self._runner = self._runner, None
        self._ports = None
        if runner is not None:
            runner.stop(10.0)

    def _publish_local(self, notification: Notification) -> None:
        message = Message(notification.topic, notification.payload_bytes, qos=1, retain=False)
        runner = self._runner
        if runner is not None:  # False from call_soon: the loop closed as the broker stopped
            runner.call_soon(self._core.publish, message)

    def _publish_external(self, notification: Notification) -> None:
        assert self._external is not None
        self._external.publish(notification.topic, notification.payload_bytes)
