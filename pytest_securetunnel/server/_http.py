"""The control plane's HTTP/1.1 server: h11's strict parser on an asyncio loop.

One loop thread reads and writes every connection; the application (synchronous: it
takes locks and may long-poll) runs in a small pool of worker threads. Connections
waiting for a request hold no thread. What a client can make the server hold is bounded
by :class:`HttpLimits`:

- a request head (request line and headers) of at most ``max_header_bytes``, else 431;
- a body of at most ``max_body_bytes``, else 413 (refused from ``Content-Length``
  before any of the body is read);
- a request must arrive in full within ``request_timeout`` seconds of the connection
  opening or of the previous answer, else 408 (or a silent close if nothing arrived);
  an answer the client does not read within that time cuts the connection;
- at most ``max_connections`` connections at once, else 503 and close;
- at most ``max_workers`` requests answered at once (the others wait their turn).

Malformed HTTP (a bad ``Content-Length``, conflicting lengths, bare LF, bad header
names, a missing ``Host``) is refused by h11 with 400 and a reason, and the connection is
closed, so nothing after a bad request is read as another request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pytest_securetunnel._realtime import new_event_loop

if TYPE_CHECKING:
    import h11

#: ``app(method, path, headers, body) -> (status, headers, body)``.
App = Callable[[str, str, "Headers", bytes], tuple[int, dict[str, str], bytes]]
#: ``on_refusal(status, code, message)``: a request refused before it reached the app.
Refusal = Callable[[int, str, str], None]

_READ_SIZE = 65_536


@dataclass(frozen=True)
class HttpLimits:
    """What one client can make the HTTP server hold (see the module docstring)."""

    #: Largest request body accepted, in bytes (1 MiB).
    max_body_bytes: int = 1_048_576
    #: Largest request line plus headers accepted, in bytes (16 KiB).
    max_header_bytes: int = 16_384
    #: Seconds a request may take to arrive in full, and an answer to be taken.
    request_timeout: float = 20.0
    #: Connections served at once; more are answered 503 and closed.
    max_connections: int = 256
    #: Requests answered at once (worker threads).
    max_workers: int = 16

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_header_bytes", "max_connections", "max_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"HttpLimits.{name} must be a positive integer; got {value!r}")
        timeout = self.request_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout < float("inf")
        ):
            raise ValueError(
                f"HttpLimits.request_timeout must be a positive number of seconds; got {timeout!r}"
            )


class Headers:
    """A request's headers: case-insensitive ``get``, ``get_all``, names in order."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name``, or ``default``."""
        wanted = name.lower()
        for key, value in self._items:
            if key == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of header ``name``, in order."""
        wanted = name.lower()
        return [value for key, value in self._items if key == wanted]

    def items(self) -> list[tuple[str, str]]:
        """(lower-case name, value) pairs, in order."""
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _ in self._items])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _Refused(Exception):
    """A request answered by the server itself (status, code, message), then closed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(eq=False)
class _Connection:
    task: asyncio.Task[None]
    idle: bool = True


@dataclass
class _Request:
    method: str
    target: str
    headers: Headers
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)


def _raw_response(status: int, code: str, message: str) -> bytes:
    """A complete ``Connection: close`` answer, built without h11 (any parser state)."""
    body = json.dumps({"__type": code, "message": message}).encode()
    phrase = http.HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: application/x-amz-json-1.1\r\n"
        f"x-amzn-ErrorType: {code}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


_H11_CODES = {
    400: "MalformedHttpRequest",
    431: "RequestHeaderFieldsTooLarge",
    501: "NotImplemented",
}
#: Control characters other than horizontal tab, which no header value may hold.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _load_h11() -> ModuleType:
    try:
        import h11
    except ImportError as exc:
        raise ImportError(
            "server mode needs h11 (a strict HTTP/1.1 parser): pip install "
            f"'pytest-securetunnel[server]'. Import failed with: {exc}"
        ) from exc
    return h11


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc


class HttpServer:
    """Serve ``app`` over HTTP/1.1 on ``host:port`` (port 0: ephemeral).

    The port is bound at once (errors name the address); :meth:`start` serves in a
    background thread; :meth:`stop` closes every connection and joins every thread.
    """

    def __init__(
        self,
        app: App,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: HttpLimits | None = None,
        on_refusal: Refusal | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._app = app
        self.limits = limits if limits is not None else HttpLimits()
        self._on_refusal = on_refusal
        self._on_error = on_error
        self._h11 = _load_h11()
        self._sock = _bind(host, port)
        self._address = self._sock.getsockname()[:2]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stopping = False
        self._stop_timeout = 10.0
        self._connections: dict[asyncio.Task[None], _Connection] = {}
        self._refusing: set[asyncio.Task[None]] = set()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        return str(self._address[0]), int(self._address[1])

    @property
    def connection_count(self) -> int:
        """Connections open now."""
        return len(self._connections)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Serve in a background thread; return once connections are accepted."""
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            self.limits.max_workers, thread_name_prefix="securetunnel-http-worker"
        )
        thread = threading.Thread(
            target=self._main, args=(ready,), name="securetunnel-http", daemon=True
        )
        thread.start()
        try:
            ready.result()
        except BaseException:
            thread.join()
            self._executor.shutdown(wait=True)
            raise
        self._thread = thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let requests being answered finish (up to ``timeout`` seconds;
        their answer says ``Connection: close``), cut every other connection, and join
        every thread. Idempotent.
        """
        thread, self._thread = self._thread, None
        loop, event = self._loop, self._stop_event
        self._stop_timeout = timeout
        if thread is not None and loop is not None and event is not None:
            self._stopping = True
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(event.set)
            thread.join(timeout + 5.0)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._sock.close()

    def _main(self, ready: concurrent.futures.Future[None]) -> None:
        loop = new_event_loop()
        loop.set_exception_handler(self._loop_exception)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve(ready))
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self._loop = None
                loop.close()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError):
            return  # a client's network failure, not a server bug
        self._report(error or RuntimeError(str(context.get("message"))))

    def _report(self, error: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(error)

    async def _serve(self, ready: concurrent.futures.Future[None]) -> None:
        self._stop_event = asyncio.Event()
        try:
            server = await asyncio.start_server(self._connection, sock=self._sock)
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        await self._stop_event.wait()
        server.close()
        for refusing in list(self._refusing):
            refusing.cancel()
        connections = list(self._connections.values())
        for connection in connections:
            if connection.idle:
                connection.task.cancel()
        busy = [c.task for c in connections if not c.task.done()]
        if busy:
            _, pending = await asyncio.wait(busy, timeout=self._stop_timeout)
            for task in pending:
                task.cancel()
        await asyncio.gather(
            *(c.task for c in connections), *self._refusing, return_exceptions=True
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), self._stop_timeout)

    # -- one connection ------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(OSError):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._stopping or len(self._connections) >= self.limits.max_connections:
            self._refusing.add(task)
            try:
                await self._refuse(
                    writer,
                    _Refused(
                        503,
                        "ServiceUnavailable",
                        f"too many connections: this server serves at most "
                        f"{self.limits.max_connections} at once; retry later",
                    ),
                )
            finally:
                self._refusing.discard(task)
            return
        connection = _Connection(task)
        self._connections[task] = connection
        try:
            await self._converse(connection, reader, writer)
        except _Refused as refused:
            await self._refuse(writer, refused)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        except asyncio.CancelledError:
            pass  # stopping: the connection is cut
        except Exception as exc:  # a bug in this module: never let it pass silently
            self._report(exc)
        finally:
            del self._connections[task]
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _refuse(self, writer: asyncio.StreamWriter, refused: _Refused) -> None:
        if refused.status == 0:
            return  # nothing arrived: close without an answer
        if self._on_refusal is not None:
            self._on_refusal(refused.status, refused.code, refused.message)
        with contextlib.suppress(Exception, asyncio.CancelledError):
            writer.write(_raw_response(refused.status, refused.code, refused.message))
            await asyncio.wait_for(writer.drain(), self.limits.request_timeout)
        writer.close()

    async def _converse(
        self, connection: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits
        h = self._h11
        # Our own head limit (in _read_request) applies first, with a clearer message.
        conn = h.Connection(h.SERVER, max_incomplete_event_size=limits.max_header_bytes + 1)
        loop = asyncio.get_running_loop()
        while True:
            connection.idle = True
            request = await self._read_request(conn, reader, writer)
            if request is None:
                return
            connection.idle = False
            try:
                assert self._executor is not None
                status, headers, payload = await loop.run_in_executor(
                    self._executor,
                    self._app,
                    request.method,
                    request.target,
                    request.headers,
                    request.body,
                )
            except Exception as exc:
                self._report(exc)
                raise _Refused(500, "InternalFailure", f"{type(exc).__name__}: {exc}") from None
            closing = self._stopping or conn.their_state is h.MUST_CLOSE
            out = [(name, value) for name, value in headers.items()]
            out.append(("Content-Length", str(len(payload))))
            out.append(("Server", "pytest-securetunnel"))
            if closing:
                out.append(("Connection", "close"))
            data = conn.send(h.Response(status_code=status, headers=out)) or b""
            if request.method != "HEAD":
                data += conn.send(h.Data(data=payload)) or b""
            data += conn.send(h.EndOfMessage()) or b""
            writer.write(data)
            try:
                await asyncio.wait_for(writer.drain(), limits.request_timeout)
            except asyncio.TimeoutError:
                return  # the client does not read its answer: cut
            if closing or self._stopping or conn.our_state is h.MUST_CLOSE:
                return  # also when stop() came while this answer was being sent
            conn.start_next_cycle()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        """The next request in full, ``None`` if the client closed between requests.

        Raises :class:`_Refused` for anything the server answers itself.
        """
        h = self._h11
        limits = self.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.request_timeout
        received = 0
        request: _Request | None = None
        size = 0
        while True:
            try:
                event = conn.next_event()
            except h.RemoteProtocolError as exc:
                status = exc.error_status_hint
                code = _H11_CODES.get(status, "MalformedHttpRequest")
                raise _Refused(status, code, f"malformed HTTP request: {exc}") from None
            if event is h.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(
                        conn.send(h.InformationalResponse(status_code=100, headers=[])) or b""
                    )
                want = _READ_SIZE
                if request is None:  # still in the head: never buffer more than its limit
                    want = limits.max_header_bytes + 1 - received
                    if want <= 0:
                        raise _Refused(
                            431,
                            "RequestHeaderFieldsTooLarge",
                            f"request line and headers are longer than this server accepts "
                            f"({limits.max_header_bytes} bytes)",
                        )
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise asyncio.TimeoutError
                    data = await asyncio.wait_for(reader.read(want), remaining)
                except asyncio.TimeoutError:
                    if received == 0 and request is None:
                        raise _Refused(0, "IdleTimeout", "no request arrived") from None
                    raise _Refused(
                        408,
                        "RequestTimeout",
                        f"the request did not arrive in full within {limits.request_timeout:g} "
                        "seconds",
                    ) from None
                received += len(data)
                conn.receive_data(data)
                continue
            if isinstance(event, h.ConnectionClosed):
                return None
            if isinstance(event, h.Request):
                request = self._start_request(event)
                continue
            if isinstance(event, h.Data):
                assert request is not None
                size += len(event.data)
                if size > limits.max_body_bytes:
                    raise self._too_large(f"more than {limits.max_body_bytes}")
                request.chunks.append(bytes(event.data))
                continue
            if isinstance(event, h.EndOfMessage):
                assert request is not None
                request.body = b"".join(request.chunks)
                request.chunks.clear()
                return request
            # InformationalResponse and Response never come from a client.

    def _start_request(self, event: h11.Request) -> _Request:
        headers = Headers(
            [(name.decode("latin-1"), value.decode("latin-1")) for name, value in event.headers]
        )
        for name, value in headers.items():
            if _CONTROL.search(value):
                raise _Refused(
                    400,
                    "MalformedHttpRequest",
                    f"malformed HTTP request: header {name!r} has a control character in its "
                    f"value {value!r}",
                )
        length = headers.get("content-length")
        if length is not None and headers.get("transfer-encoding") is not None:
            raise _Refused(
                400,
                "MalformedHttpRequest",
                "malformed HTTP request: both Content-Length and Transfer-Encoding are set; "
                "send one",
            )
        if length is not None and int(length) > self.limits.max_body_bytes:
            raise self._too_large(length)
        return _Request(event.method.decode("ascii"), event.target.decode("latin-1"), headers)

    def _too_large(self, size: str) -> _Refused:
        return _Refused(
            413,
            "RequestEntityTooLarge",
            f"request body of {size} bytes is larger than this server accepts "
            f"({self.limits.max_body_bytes} bytes)",
        )
