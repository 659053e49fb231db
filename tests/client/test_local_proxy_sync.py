"""SyncLocalProxy from synchronous code, with the server and app on another thread."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest
from helpers_client import ThreadedServer, app_address, start_echo_app, thread_names

from pytest_securetunnel.client import LocalProxyError, SyncLocalProxy


@pytest.fixture
def echo_address(threaded_server: ThreadedServer) -> Iterator[str]:
    app = threaded_server.thread.run(start_echo_app())
    yield app_address(app)

    async def close() -> None:
        app.close()
        await app.wait_closed()

    threaded_server.thread.run(close())


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            received += chunk
        return received


def test_sync_local_proxy_pair(threaded_server: ThreadedServer, echo_address: str) -> None:
    before = thread_names()
    endpoint = threaded_server.endpoint
    with (
        SyncLocalProxy(endpoint, "destination-token", "destination", f"SSH={echo_address}"),
        SyncLocalProxy(endpoint, "source-token", "source", "SSH=0") as source,
    ):
        payload = bytes(range(256)) * 1000
        assert exchange(source.port, payload) == payload
        assert exchange(source.ports["SSH"], b"again") == b"again"
        assert any(r.message.type_name == "STREAM_START" for r in source.messages)
    assert source.closed
    assert thread_names() == before


def test_sync_local_proxy_in_a_running_loop(
    threaded_server: ThreadedServer, echo_address: str
) -> None:
    async def notebook_cell() -> bytes:
        endpoint = threaded_server.endpoint
        with (
            SyncLocalProxy(endpoint, "destination-token", "destination", {"SSH": echo_address}),
            SyncLocalProxy(endpoint, "source-token", "source") as source,
        ):
            return exchange(source.port, b"from a notebook")

    assert asyncio.run(notebook_cell()) == b"from a notebook"


def test_sync_local_proxy_start_failure_leaves_no_thread(threaded_server: ThreadedServer) -> None:
    before = thread_names()
    proxy = SyncLocalProxy(threaded_server.endpoint, "destination-token", "destination")
    with pytest.raises(LocalProxyError, match="No port mapping exists"):
        proxy.start()
    assert thread_names() == before
    proxy.stop()
