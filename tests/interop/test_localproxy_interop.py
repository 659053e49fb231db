"""Interoperability with the reference C++ local proxy (aws-iot-securetunneling-localproxy v3).

These tests run the real ``localproxy`` binary against :class:`TunnelProxy` over TLS,
through the ``securetunnel_localproxy`` fixture, and check what it logs, what the proxy
saw and what reached TCP servers behind the tunnel. The binary is never built or
downloaded here; without one (``SECURETUNNEL_LOCALPROXY``, ``localproxy`` on ``PATH``,
``/opt/localproxy/localproxy``) the fixture skips them. See ``docs/interop.md``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.client import ReferenceLocalProxy, SyncLocalProxy, SyncTunnelClient
from pytest_securetunnel.protocol import MessageType, TunnelMessage
from pytest_securetunnel.proxy import Mode, ProxyEvent, TunnelProxy

V3: Final = "aws.iot.securetunneling-3.0"
TIMEOUT: Final = 10.0  # seconds for any one thing to happen; normally milliseconds

# Log lines of the reference local proxy (src/TcpAdapterProxy.cpp), used as markers.
ESTABLISHED: Final = "Successfully established websocket connection with proxy server: wss://"
SSL_DONE: Final = "Successfully completed SSL handshake with proxy server"
SERVICE_IDS_SEEN: Final = "Extracting service Ids from control message 5"
LISTENING: Final = re.compile(r"Listening for new connection on port (\d+)")
CONNECTED_TO: Final = re.compile(r"Connected to (\S+)")
PONG: Final = re.compile(r"Pong reply latency: (\d+) ms")
CLOSE_1000: Final = re.compile(r"Web socket close received\. Code: 1000; Reason: (.*)")
REJECTED: Final = re.compile(
    r'Proxy server rejected web socket upgrade request: \(HTTP/1\.1 (\d+) ([^)]*)\) "(.*)"'
)
VERIFY_FAILED: Final = "certificate verify failed"
REUSED_BODY: Final = (
    "Invalid access token: The access token was previously used and can not be used again."
)


StartLocalProxy = Callable[..., ReferenceLocalProxy]


# -- TCP servers behind the tunnel --------------------------------------------------------


class _EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(TIMEOUT)
        with contextlib.suppress(OSError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


class _HttpHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello through the tunnel: {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _JoiningTCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = False  # server_close() joins the handler threads
    block_on_close = True


class _JoiningHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True


@contextlib.contextmanager
def serving(server: socketserver.TCPServer) -> Iterator[str]:
    """Serve in a thread; yield ``127.0.0.1:PORT``; shut down and join on exit."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(server).__name__
    )
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def connect(port: int, timeout: float = TIMEOUT) -> socket.socket:
    """Connect to 127.0.0.1:``port``, retrying while the port refuses connections.

    localproxy logs "Listening for new connection on port N" a moment before its
    acceptor listens; the fixture waits for the listening socket on Linux, and this
    retry covers other systems.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout)
        except ConnectionRefusedError:
            if time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)  # back-off between attempts, not synchronisation
        delay = min(delay * 2, 0.05)


def exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload`` to 127.0.0.1:``port`` and read as many bytes back."""
    with connect(port) as sock:
        sock.sendall(payload)
        return receive_exactly(sock, len(payload))


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    """Read exactly ``size`` bytes from ``sock``."""
    received = bytearray()
    while len(received) < size:
        chunk = sock.recv(min(65536, size - len(received)))
        assert chunk, f"connection closed after {len(received)} of {size} bytes"
        received += chunk
    return bytes(received)


def pattern_bytes(size: int, seed: int) -> bytes:
    """``size`` bytes that differ per ``seed`` (so crossed connections show)."""
    block = bytes((seed * 31 + i) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Fail if a test leaves a thread, a process or a file descriptor behind."""
    threads_before = set(threading.enumerate())
    fds_before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()
    yield
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(TIMEOUT)
    assert set(threading.enumerate()) <= threads_before
    if fds_before:
        leaked = set(os.listdir("/proc/self/fd")) - fds_before
        assert not leaked, f"file descriptors left open: {sorted(leaked)}"


@pytest.fixture
def fake(securetunnel: SecureTunnelFake) -> SecureTunnelFake:
    return securetunnel


@pytest.fixture
def proxy(securetunnel_proxy: TunnelProxy) -> TunnelProxy:
    return securetunnel_proxy  # an error inside it fails the test at teardown


@pytest.fixture
def tunnel(fake: SecureTunnelFake) -> dict[str, Any]:
    opened: dict[str, Any] = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
    return opened


@pytest.fixture
def echo_address() -> Iterator[str]:
    with serving(_JoiningTCPServer(("127.0.0.1", 0), _EchoHandler)) as address:
        yield address


@pytest.fixture
def http_address() -> Iterator[str]:
    with serving(_JoiningHTTPServer(("127.0.0.1", 0), _HttpHandler)) as address:
        yield address


@pytest.fixture
def start_localproxy(securetunnel_localproxy: StartLocalProxy) -> StartLocalProxy:
    """``securetunnel_localproxy`` at trace level (``-v 6``): the tests read trace lines."""
    return functools.partial(securetunnel_localproxy, verbosity=6)


# -- helpers --------------------------------------------------------------------------------


def connection_status(fake: SecureTunnelFake, tunnel_id: str, mode: Mode) -> str:
    """``DescribeTunnel``'s ``<mode>ConnectionState.status``."""
    described = fake.call("DescribeTunnel", {"tunnelId": tunnel_id})["tunnel"]
    status: str = described[f"{mode}ConnectionState"]["status"]
    return status


def connect_source(
    start: StartLocalProxy, token: str, *args: str, client_token: str | None = None
) -> tuple[ReferenceLocalProxy, int]:
    """Start a source localproxy for SSH on a free port; return it and the port.

    The fixture chooses the port: v3.3.1 refuses ``-s SSH=0``.
    """
    source = start(token, "source", {"SSH": None}, args=args, client_token=client_token)
    source.wait_for(ESTABLISHED)
    _, listening = source.wait_for(LISTENING)
    assert int(listening.group(1)) == source.ports["SSH"]
    return source, source.ports["SSH"]


def connect_destination(
    start: StartLocalProxy, token: str, services: dict[str, int | str | None]
) -> ReferenceLocalProxy:
    """Start a destination localproxy and wait until it has the service ids."""
    destination = start(token, "destination", services)
    destination.wait_for(ESTABLISHED)
    destination.wait_for(SERVICE_IDS_SEEN)
    return destination


def received(
    proxy: TunnelProxy, tunnel_id: str, mode: Mode, kind: MessageType
) -> list[TunnelMessage]:
    """Messages of type ``kind`` that the ``mode`` client sent to the proxy."""
    return [m for m in proxy.messages("received", tunnel=tunnel_id, mode=mode) if m.type == kind]


def wait_received(
    proxy: TunnelProxy,
    tunnel_id: str,
    mode: Mode,
    kind: MessageType,
    connection_id: int,
) -> ProxyEvent:
    """Wait until the ``mode`` client sent ``kind`` for ``connection_id``."""

    def matches(event: ProxyEvent) -> bool:
        return event.message is not None and event.message.connection_id == connection_id

    return proxy.wait_for(
        matches,
        TIMEOUT,
        tunnel=tunnel_id,
        mode=mode,
        message_type=kind,
    )


# -- 1: connect over TLS, SERVICE_IDS first, DescribeTunnel --------------------------------


@pytest.mark.parametrize("mode", ["source", "destination"])
def test_connects_over_tls_and_receives_service_ids_first(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    start_localproxy: StartLocalProxy,
    echo_address: str,
    mode: Mode,
) -> None:
    tunnel_id = tunnel["tunnelId"]
    if mode == "source":
        client = start_localproxy(tunnel["sourceAccessToken"], mode, {"SSH": None})
    else:
        client = start_localproxy(tunnel["destinationAccessToken"], mode, {"SSH": echo_address})
    client.wait_for(SSL_DONE)
    client.wait_for(f"{ESTABLISHED}{proxy.host_port}")
    client.wait_for(f"Web socket subprotocol selected: {V3}")
    client.wait_for(SERVICE_IDS_SEEN)
    if mode == "source":
        client.wait_for(LISTENING)
    connected = proxy.wait_for("connected", TIMEOUT, tunnel=tunnel_id, mode=mode)
    assert connected.reason == V3
    first = proxy.wait_for(
        lambda e: e.kind in {"sent", "received"},
        TIMEOUT,
        tunnel=tunnel_id,
        mode=mode,
    )
    assert first.kind == "sent"
    assert first.message == TunnelMessage.service_ids(["SSH"])
    assert connection_status(fake, tunnel_id, mode) == "CONNECTED"
    other: Mode = "destination" if mode == "source" else "source"
    assert connection_status(fake, tunnel_id, other) == "DISCONNECTED"
    assert "SECURITY WARNING" not in client.log
    assert "Web socket session ID: " in client.log
    assert client.process.poll() is None


@pytest.mark.parametrize("trust", ["none", "ca-file"])
def test_certificate_is_really_verified(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    start_localproxy: StartLocalProxy,
    trust: str,
) -> None:
    """Without the hashed CA directory the handshake fails: ``-c`` is what makes it pass."""
    ca_dir = None if trust == "none" else proxy.ca_file
    client = start_localproxy(
        tunnel["sourceAccessToken"], "source", {"SSH": None}, ca_dir=ca_dir, ready=False
    )
    client.wait_for(VERIFY_FAILED)
    assert ESTABLISHED not in client.log
    assert not [e for e in proxy.events if e.kind == "connected"]


# -- 2: TCP end to end through two C++ proxies and ours --------------------------------------


def test_tcp_end_to_end_through_two_localproxies(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    tunnel_id = tunnel["tunnelId"]
    destination = connect_destination(
        start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address}
    )
    source, port = connect_source(start_localproxy, tunnel["sourceAccessToken"])

    # One connection after another, up to 200 KB each (several 63 KiB DATA messages).
    sizes = (1, 1000, 200_000)
    for seed, size in enumerate(sizes):
        payload = pattern_bytes(size, seed)
        assert exchange(port, payload) == payload
        wait_received(proxy, tunnel_id, "source", MessageType.CONNECTION_RESET, seed + 1)
    _, echo_port = echo_address.split(":")
    assert destination.count(f"Connected to 127.0.0.1, port: {echo_port}") == len(sizes)
    assert connection_status(fake, tunnel_id, "source") == "CONNECTED"
    assert connection_status(fake, tunnel_id, "destination") == "CONNECTED"
    # V3: the first TCP client starts the stream, later ones start connections on it.
    control = [
        m
        for m in proxy.messages("received", tunnel=tunnel_id, mode="source")
        if m.type != MessageType.DATA
    ]
    assert control == [
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.connection_reset(1, 1, "SSH"),
        TunnelMessage.connection_start(1, 2, "SSH"),
        TunnelMessage.connection_reset(1, 2, "SSH"),
        TunnelMessage.connection_start(1, 3, "SSH"),
        TunnelMessage.connection_reset(1, 3, "SSH"),
    ]
    data = received(proxy, tunnel_id, "source", MessageType.DATA)
    assert sum(len(m.payload) for m in data) == sum(sizes)
    assert all(m.stream_id == 1 and m.service_id == "SSH" for m in data)
    assert max(len(m.payload) for m in data) <= 64512
    assert not [e for e in proxy.events if e.kind in {"violation", "dropped", "error"}]
    assert source.process.poll() is None


def test_simultaneous_v3_connections(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    tunnel_id = tunnel["tunnelId"]
    connect_destination(start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address})
    source, port = connect_source(start_localproxy, tunnel["sourceAccessToken"])
    connected = proxy.wait_for("connected", TIMEOUT, tunnel=tunnel_id, mode="source")
    if connected.reason != V3:
        pytest.skip(f"this localproxy negotiated {connected.reason}: no simultaneous connections")

    count = 4
    with contextlib.ExitStack() as stack:
        sockets = []
        for connection_id in range(1, count + 1):
            sock = stack.enter_context(connect(port))
            sockets.append(sock)
            kind = MessageType.STREAM_START if connection_id == 1 else MessageType.CONNECTION_START
            wait_received(proxy, tunnel_id, "source", kind, connection_id)
        payloads = [pattern_bytes(50_000 + 1000 * i, i) for i in range(count)]
        for sock, payload in zip(
            sockets, payloads, strict=True
        ):  # all open: interleave the traffic
            sock.sendall(payload[:25_000])
        for sock, payload in zip(reversed(sockets), reversed(payloads), strict=True):
            sock.sendall(payload[25_000:])
        for sock, payload in zip(sockets, payloads, strict=True):
            assert receive_exactly(sock, len(payload)) == payload
        sockets[1].close()
        wait_received(proxy, tunnel_id, "source", MessageType.CONNECTION_RESET, 2)
        # The others still work after one of them closed.
        for sock, payload in ((sockets[0], b"first"), (sockets[3], b"fourth")):
            sock.sendall(payload)
            assert receive_exactly(sock, len(payload)) == payload
    for connection_id in (1, 3, 4):
        wait_received(proxy, tunnel_id, "source", MessageType.CONNECTION_RESET, connection_id)
    starts = received(proxy, tunnel_id, "source", MessageType.CONNECTION_START)
    assert [m.connection_id for m in starts] == [2, 3, 4]
    assert all(m.stream_id == 1 and m.service_id == "SSH" for m in starts)
    assert source.process.poll() is None
    assert not [e for e in proxy.events if e.kind in {"violation", "error"}]


def test_two_services_echo_and_http(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    echo_address: str,
    http_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    tunnel = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH", "HTTP"]}})
    connect_destination(
        start_localproxy,
        tunnel["destinationAccessToken"],
        {"SSH": echo_address, "HTTP": http_address},
    )
    source = start_localproxy(tunnel["sourceAccessToken"], "source", {"SSH": None, "HTTP": None})
    ssh_port, http_port = source.ports["SSH"], source.ports["HTTP"]
    first, _ = source.wait_for(LISTENING)
    source.wait_for(LISTENING, after=first + 1)

    assert exchange(ssh_port, b"ssh bytes") == b"ssh bytes"
    for path in ("/one", "/two"):
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=TIMEOUT)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == f"hello through the tunnel: {path}".encode()
        finally:
            conn.close()
    services = {
        m.service_id for m in received(proxy, tunnel["tunnelId"], "source", MessageType.DATA)
    }
    assert services == {"SSH", "HTTP"}


# -- 3: C++ on one side, Python on the other --------------------------------------------------


def test_cpp_destination_with_python_tunnel_client_source(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    destination = connect_destination(
        start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address}
    )
    with SyncTunnelClient.connect(
        proxy.tls_endpoint, tunnel["sourceAccessToken"], "source", ssl=proxy.ssl_context
    ) as source:
        assert source.service_ids == ("SSH",)
        stream_id = source.start_stream("SSH")
        destination.wait_for(CONNECTED_TO)
        source.send(b"one", service_id="SSH")
        assert source.receive_data("SSH", connection_id=1) == b"one"
        big = pattern_bytes(150_000, 7)
        source.send(big, service_id="SSH")
        echoed = b""
        while len(echoed) < len(big):
            echoed += source.receive_data("SSH", connection_id=1)
        assert echoed == big
        connection_id = source.start_connection(stream_id, service_id="SSH")
        assert connection_id == 2
        source.send(b"two", service_id="SSH", connection_id=2)
        assert source.receive_data("SSH", connection_id=2) == b"two"
        source.reset_connection(stream_id, 2, service_id="SSH")
        source.send(b"still one", service_id="SSH")
        assert source.receive_data("SSH", connection_id=1) == b"still one"
    assert destination.process.poll() is None


def test_cpp_destination_with_python_local_proxy_source(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    connect_destination(start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address})
    with SyncLocalProxy(
        proxy.tls_endpoint, tunnel["sourceAccessToken"], "source", "SSH=0", ssl=proxy.ssl_context
    ) as source:
        for seed in range(3):
            payload = pattern_bytes(70_000, seed)
            assert exchange(source.port, payload) == payload
        with (
            connect(source.port) as first,
            connect(source.port) as second,
        ):
            first.sendall(b"a" * 10)
            second.sendall(b"b" * 20)
            assert receive_exactly(second, 20) == b"b" * 20
            assert receive_exactly(first, 10) == b"a" * 10


def test_python_local_proxy_destination_with_cpp_source(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    with SyncLocalProxy(
        proxy.endpoint, tunnel["destinationAccessToken"], "destination", {"SSH": echo_address}
    ):
        _, port = connect_source(start_localproxy, tunnel["sourceAccessToken"])
        for seed in range(3):
            payload = pattern_bytes(100_000, seed)
            assert exchange(port, payload) == payload
        with (
            connect(port) as first,
            connect(port) as second,
        ):
            second.sendall(b"second")
            first.sendall(b"first")
            assert receive_exactly(first, 5) == b"first"
            assert receive_exactly(second, 6) == b"second"


def test_python_tunnel_client_destination_sees_cpp_source_messages(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    start_localproxy: StartLocalProxy,
) -> None:
    with SyncTunnelClient.connect(
        proxy.endpoint, tunnel["destinationAccessToken"], "destination"
    ) as destination:
        _, port = connect_source(start_localproxy, tunnel["sourceAccessToken"])
        with connect(port) as sock:
            assert destination.receive() == TunnelMessage.stream_start(1, "SSH", 1)
            sock.sendall(b"ping")
            assert destination.receive() == TunnelMessage.data(1, b"ping", "SSH", 1)
            destination.send(b"pong", service_id="SSH", connection_id=1)
            assert receive_exactly(sock, 4) == b"pong"
            with connect(port):
                assert destination.receive() == TunnelMessage.connection_start(1, 2, "SSH")
            assert destination.receive() == TunnelMessage.connection_reset(1, 2, "SSH")
        assert destination.receive() == TunnelMessage.connection_reset(1, 1, "SSH")


# -- 4: CloseTunnel ends both processes with exit code 0 -------------------------------------


def test_close_tunnel_makes_both_localproxies_exit_0(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    tunnel_id = tunnel["tunnelId"]
    destination = connect_destination(
        start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address}
    )
    source, port = connect_source(start_localproxy, tunnel["sourceAccessToken"])
    with connect(port) as open_connection:
        open_connection.sendall(b"before close")
        assert receive_exactly(open_connection, 12) == b"before close"

        fake.call("CloseTunnel", {"tunnelId": tunnel_id})

        assert source.wait_exit() == 0
        assert destination.wait_exit() == 0
        assert open_connection.recv(1) == b""  # the source reset its TCP clients
    for client in (source, destination):
        _, close = client.wait_for(CLOSE_1000)
        assert "CloseTunnel" in close.group(1)
    modes: tuple[Mode, ...] = ("source", "destination")
    for mode in modes:
        proxy.wait_for("disconnected", TIMEOUT, tunnel=tunnel_id, mode=mode, code=1000)
    described = fake.call("DescribeTunnel", {"tunnelId": tunnel_id})["tunnel"]
    assert described["status"] == "CLOSED"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), TIMEOUT).close()


# -- 5: a used token is refused with HTTP 400, and localproxy exits 0 --------------------------


@pytest.mark.parametrize("first_state", ["connected", "exited"])
def test_reused_token_gets_400_and_localproxy_exits_0(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    start_localproxy: StartLocalProxy,
    first_state: str,
) -> None:
    tunnel_id = tunnel["tunnelId"]
    token = tunnel["sourceAccessToken"]
    first, _ = connect_source(start_localproxy, token)
    if first_state == "exited":
        first.stop()  # SIGTERM: no close frame, the proxy sees 1006
        proxy.wait_for("disconnected", TIMEOUT, tunnel=tunnel_id, mode="source", code=1006)

    second = start_localproxy(token, "source", {"SSH": None}, ready=False, name="second")
    assert second.wait_exit() == 0
    _, rejected = second.wait_for(REJECTED)
    assert rejected.group(1, 2, 3) == ("400", "Bad Request", REUSED_BODY)
    assert ESTABLISHED not in second.log
    refused = proxy.wait_for("refused", TIMEOUT, code=400)
    assert refused.reason == REUSED_BODY
    if first_state == "connected":  # the refused attempt did not disturb the first one
        assert first.process.poll() is None
        assert connection_status(fake, tunnel_id, "source") == "CONNECTED"
        assert not [e for e in proxy.events if e.kind == "disconnected"]
    else:
        assert connection_status(fake, tunnel_id, "source") == "DISCONNECTED"


def test_dropped_connection_without_client_token_ends_with_400(
    proxy: TunnelProxy, tunnel: dict[str, Any], start_localproxy: StartLocalProxy
) -> None:
    """localproxy reconnects at once with the same, now used, token; 400 ends it (exit 0)."""
    tunnel_id = tunnel["tunnelId"]
    source, _ = connect_source(start_localproxy, tunnel["sourceAccessToken"])
    assert proxy.drop_connection(tunnel_id, "source") == 1
    assert source.wait_exit() == 0
    _, rejected = source.wait_for(REJECTED)
    assert rejected.group(1, 3) == ("400", REUSED_BODY)
    assert "Websocket read error" in source.log


@pytest.mark.parametrize("local_connection", ["closed", "open"])
def test_dropped_connection_with_client_token_reconnects(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
    local_connection: str,
) -> None:
    """With ``AWSIOT_TUNNEL_CLIENT_TOKEN`` the same token may reconnect, and traffic resumes.

    The reconnected source numbers its streams from 1 again, so the destination must get
    STREAM_RESET for the stream it has active: whether the source's local connection
    ended before the drop (``closed``: the destination already got CONNECTION_RESET) or
    was still open (``open``).
    """
    tunnel_id = tunnel["tunnelId"]
    client_token = "interop-" + "0123456789abcdef" * 2
    connect_destination(start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address})
    source, port = connect_source(
        start_localproxy,
        tunnel["sourceAccessToken"],
        client_token=client_token,
    )
    first, _ = source.wait_for(ESTABLISHED)
    with contextlib.ExitStack() as held:
        sock = held.enter_context(connect(port))
        sock.sendall(b"before the drop")
        assert receive_exactly(sock, 15) == b"before the drop"
        if local_connection == "closed":
            held.close()
            wait_received(proxy, tunnel_id, "source", MessageType.CONNECTION_RESET, 1)
        after = proxy.last_seq
        assert proxy.drop_connection(tunnel_id, "source") == 1
        second, _ = source.wait_for(ESTABLISHED, after=first + 1)
    reconnected = proxy.wait_for("connected", TIMEOUT, after=after, tunnel=tunnel_id, mode="source")
    first_sent = proxy.wait_for(
        lambda e: e.kind == "sent" and e.channel_id == reconnected.channel_id,
        TIMEOUT,
        after=reconnected.seq,
    )
    assert first_sent.message == TunnelMessage.service_ids(["SSH"])
    reset = proxy.wait_for(
        "sent",
        TIMEOUT,
        after=after,
        tunnel=tunnel_id,
        mode="destination",
        message_type=MessageType.STREAM_RESET,
    )
    assert reset.message == TunnelMessage.stream_reset(1, "SSH")
    source.wait_for(SERVICE_IDS_SEEN, after=second + 1)
    source.wait_for(LISTENING, after=second + 1)
    assert exchange(port, b"after the drop") == b"after the drop"
    assert connection_status(fake, tunnel_id, "source") == "CONNECTED"
    assert not [e for e in proxy.events if e.kind == "refused"]


def test_v2_message_format_source(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    """``-y V2``: V2 messages (no connectionId) on the 3.0 subprotocol reach a V3 destination."""
    tunnel_id = tunnel["tunnelId"]
    connect_destination(start_localproxy, tunnel["destinationAccessToken"], {"SSH": echo_address})
    _, port = connect_source(start_localproxy, tunnel["sourceAccessToken"], "-y", "V2")
    payload = pattern_bytes(100_000, 3)
    assert exchange(port, payload) == payload
    proxy.wait_for(
        "received", TIMEOUT, tunnel=tunnel_id, mode="source", message_type=MessageType.STREAM_RESET
    )
    sent = proxy.messages("received", tunnel=tunnel_id, mode="source")
    assert sent[0] == TunnelMessage.stream_start(1, "SSH")
    assert sent[-1] == TunnelMessage.stream_reset(1, "SSH")
    assert all(m.connection_id == 0 for m in sent)
    assert not [e for e in proxy.events if e.kind in {"violation", "error"}]


# -- 6: pings are answered ------------------------------------------------------------------


def test_localproxy_pings_are_answered(
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
    tmp_path: Path,
) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(
        json.dumps({"tunneling": {"proxy": {"websocket": {"ping_period_ms": "50"}}}}),
        encoding="utf-8",
    )
    source = start_localproxy(
        tunnel["sourceAccessToken"],
        "source",
        {"SSH": None},
        args=["--settings-json", str(settings)],
    )
    destination = start_localproxy(
        tunnel["destinationAccessToken"], "destination", {"SSH": echo_address}
    )
    # Right after the upgrade (default settings) and then every 50 ms (source).
    for client in (source, destination):
        client.wait_for("Seting up web socket pings")
        _, latency = client.wait_for(PONG)
        assert int(latency.group(1)) < TIMEOUT * 1000
    index = -1
    for _ in range(4):
        index, _ = source.wait_for(PONG, after=index + 1)
    assert source.count(PONG) >= 4
    assert source.process.poll() is None
    assert destination.process.poll() is None
    assert not [e for e in proxy.events if e.kind in {"violation", "error", "disconnected"}]


# -- 7: the data endpoint chosen by region, as agents do ---------------------------------------


def test_region_flag_with_an_endpoint_override(
    fake: SecureTunnelFake,
    proxy: TunnelProxy,
    tunnel: dict[str, Any],
    echo_address: str,
    start_localproxy: StartLocalProxy,
) -> None:
    """``-r REGION`` (what an agent passes from a notification) reaches the fake.

    The settings key ``tunneling.proxy.region_endpoint_overrides.REGION`` maps the
    region to the proxy instead of ``data.tunneling.iot.REGION.amazonaws.com``.
    """
    region = fake.default_region
    destination = start_localproxy(
        tunnel["destinationAccessToken"], "destination", {"SSH": echo_address}, region=region
    )
    source = start_localproxy(tunnel["sourceAccessToken"], "source", {"SSH": None}, region=region)
    for client in (source, destination):
        assert "-e" not in client.args
        assert client.args[1:3] == ["-r", region]
        client.wait_for(f"{ESTABLISHED}{proxy.host_port}")
    assert exchange(source.ports["SSH"], b"found by region") == b"found by region"


# -- regional data endpoints -------------------------------------------------------------------


def test_regional_endpoint_admits_its_regions_tokens_only(
    fake: SecureTunnelFake, proxy: TunnelProxy, start_localproxy: StartLocalProxy
) -> None:
    west = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}}, region="eu-west-1")
    wrong = start_localproxy(
        west["sourceAccessToken"], "source", {"SSH": None}, ready=False, name="wrong"
    )
    assert wrong.wait_exit() == 0
    _, rejected = wrong.wait_for(REJECTED)
    assert rejected.group(1, 2, 3) == (
        "400",
        "Bad Request",
        "Invalid access token: The access token is not valid.",
    )
    endpoint = proxy.host_port_for("eu-west-1")
    assert endpoint != proxy.host_port
    source = start_localproxy(
        west["sourceAccessToken"], "source", {"SSH": None}, region="eu-west-1", name="right"
    )
    source.wait_for(f"{ESTABLISHED}{endpoint}")
    source.wait_for(SERVICE_IDS_SEEN)
    assert fake.tunnel(west["tunnelId"]).source.status == "CONNECTED"
