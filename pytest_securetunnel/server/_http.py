"""A small threaded HTTP/1.1 server that can be stopped at once, with no leaks.

``http.server.ThreadingHTTPServer`` leaves keep-alive connections (botocore and the AWS
CLI keep theirs open) in daemon threads after ``shutdown()``. This one tracks every
connection and its thread, wakes its accept loop through a socket pair instead of
polling, and on :meth:`HttpServer.stop` shuts every connection down and joins every
thread.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``app(method, path, headers, body) -> (status, headers, body)``.
App = Callable[[str, str, Any, bytes], tuple[int, dict[str, str], bytes]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pytest-securetunnel"
    sys_version = ""
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK add ~40 ms to every call.
    disable_nagle_algorithm = True
    server: _ThreadedServer

    def _respond(self) -> None:
        with self.server.connections_lock:
            self.server.busy.add(self.request)
        try:
            self._answer()
        finally:
            with self.server.connections_lock:
                self.server.busy.discard(self.request)
                self.server.idle.notify_all()

    def _answer(self) -> None:
        length = self.headers.get("Content-Length")
        try:
            size = int(length) if length else 0
        except ValueError:
            self.send_error(400, f"Content-Length {length!r} is not a number")
            return
        body = self.rfile.read(size) if size > 0 else b""
        status, headers, payload = self.server.app(self.command, self.path, self.headers, body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.server.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _respond

    def log_message(self, format: str, *args: Any) -> None:
        """Silence ``http.server``'s own access log; the app logs each call."""


class _ThreadedServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: App, family: socket.AddressFamily):
        self.address_family = family
        self.app = app
        self.stopping = threading.Event()
        self.connections: dict[socket.socket, threading.Thread] = {}
        #: Connections in the middle of a request; stop() lets them answer first.
        self.busy: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.idle = threading.Condition(self.connections_lock)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name="securetunnel-http-connection",
            daemon=True,
        )
        with self.connections_lock:
            self.connections[request] = thread
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.pop(request, None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections cut by the client or by :meth:`HttpServer.stop` are not errors."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self.stopping.is_set():
            return
        super().handle_error(request, client_address)


class HttpServer:
    """Serve ``app`` over HTTP/1.1 on ``host:port`` (port 0: ephemeral) in threads."""

    def __init__(self, app: App, host: str = "127.0.0.1", port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._server = _ThreadedServer((host, port), app, family)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._wake_read, self._wake_write = socket.socketpair()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _cut(sockets: list[socket.socket]) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Accept connections in a background thread."""
        self._thread = threading.Thread(
            target=self._accept_loop, name="securetunnel-http", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._server.socket, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read:
                        return
                self._server._handle_request_noblock()  # type: ignore[attr-defined]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let requests in progress answer, cut every connection, join
        every thread; idempotent.

        Idle keep-alive connections are cut at once; a request being answered gets up to
        ``timeout`` seconds to finish (its answer says ``Connection: close``).
        """
        server = self._server
        server.stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            self._wake_write.send(b"x")
            thread.join(timeout)
        with server.connections_lock:
            connections = list(server.connections.items())
            idle = [sock for sock, _ in connections if sock not in server.busy]
        self._cut(idle)
        with server.connections_lock:
            server.idle.wait_for(lambda: not server.busy, timeout)
            rest = list(server.connections)
        self._cut(rest)
        for _, conn_thread in connections:
            conn_thread.join(timeout)
        server.server_close()
        self._wake_read.close()
        self._wake_write.close()
