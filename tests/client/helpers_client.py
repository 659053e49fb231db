"""Helpers shared by the client tests: leak checks and a server on its own thread."""

from __future__ import annotations

import asyncio
import os
import threading

from fake_tunnel_server import FakeTunnelServer

from pytest_securetunnel._lifecycle import LoopThread


def open_fds() -> set[str]:
    """File descriptors open in this process (Linux)."""
    return set(os.listdir("/proc/self/fd"))


def thread_names() -> set[str]:
    """Names of the live threads."""
    return {thread.name for thread in threading.enumerate()}


class ThreadedServer:
    """A FakeTunnelServer on its own loop thread, for synchronous tests."""

    def __init__(self, services: list[str]) -> None:
        self.thread = LoopThread("FakeTunnelServer").start()
        self.server = FakeTunnelServer(services)
        self.thread.run(self.server.start())

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def stop(self) -> None:
        self.thread.run(self.server.stop())
        self.thread.stop()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0]
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + request_line)
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def start_echo_app() -> asyncio.Server:
    """A TCP echo server on 127.0.0.1 (the destination application)."""
    return await asyncio.start_server(_echo, "127.0.0.1", 0)


async def start_http_app() -> asyncio.Server:
    """An HTTP/1.0 server that answers with the request line and closes."""
    return await asyncio.start_server(_http, "127.0.0.1", 0)


def app_address(app: asyncio.Server) -> str:
    """``127.0.0.1:<port>`` of an app, in the ``-d`` mapping form."""
    return f"127.0.0.1:{app.sockets[0].getsockname()[1]}"


async def echo_exchange(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Connect to ``port``, send ``payload`` and read as many bytes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        return await asyncio.wait_for(reader.readexactly(len(payload)), timeout)
    finally:
        writer.close()
        await writer.wait_closed()


async def http_get(port: int, path: str = "/", timeout: float = 5.0) -> bytes:
    """Send an HTTP/1.0 GET to ``port`` and read the response until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()
