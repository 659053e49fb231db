"""The synchronous clients on websockets.sync: their own threads, and nothing left after stop."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading

import pytest
import test_local_proxy_sync
from helpers_client import ThreadedServer, thread_names

from pytest_securetunnel.client import (
    SyncEchoPeer,
    SyncLocalProxy,
    SyncTunnelClient,
    TunnelClosedError,
)
from pytest_securetunnel.protocol import MessageType

#: The echo application fixture of the SyncLocalProxy tests.
echo_address = test_local_proxy_sync.echo_address


def own_threads() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("Sync"))


def test_sync_client_reads_on_one_thread_of_its_own(threaded_server: ThreadedServer) -> None:
    with SyncTunnelClient.connect(threaded_server.endpoint, "source-token", "source") as client:
        assert own_threads() == ["SyncTunnelClient source"]
        assert repr(client).startswith("<SyncTunnelClient source aws.iot.securetunneling-3.0")
    assert own_threads() == []


def test_sync_client_is_usable_from_several_threads(threaded_server: ThreadedServer) -> None:
    endpoint = threaded_server.endpoint
    with (
        SyncEchoPeer.connect(endpoint, "destination-token") as peer,
        SyncTunnelClient.connect(endpoint, "source-token", "source") as source,
    ):
        assert isinstance(peer.client, SyncTunnelClient)
        source.start_stream("SSH")
        senders = [
            threading.Thread(
                target=source.send, args=(bytes([n]) * 1000,), kwargs={"service_id": "SSH"}
            )
            for n in range(4)
        ]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        echoed = sorted(source.receive_data("SSH") for _ in range(4))
        assert echoed == [bytes([n]) * 1000 for n in range(4)]
        sent = [r for r in source.messages if r.direction == "sent"]
        assert [r.message.type for r in sent] == [MessageType.STREAM_START] + [MessageType.DATA] * 4


def test_sync_local_proxy_stop_ends_open_local_connections(
    threaded_server: ThreadedServer, echo_address: str
) -> None:
    before = thread_names()
    endpoint = threaded_server.endpoint
    with (
        SyncLocalProxy(endpoint, "destination-token", "destination", {"SSH": echo_address}),
        SyncLocalProxy(endpoint, "source-token", "source", {"SSH": 0}) as source,
    ):
        assert isinstance(source.client, SyncTunnelClient)
        first = socket.create_connection(("127.0.0.1", source.port), timeout=5)
        second = socket.create_connection(("127.0.0.1", source.port), timeout=5)
        for sock, payload in ((first, b"one"), (second, b"two")):
            sock.sendall(payload)
            assert sock.recv(16) == payload
        assert source.open_connections == 2
    with first, second:
        # Stopping closed both local connections: the application sees the end.
        assert first.recv(16) == b""
        assert second.recv(16) == b""
    assert source.closed
    assert thread_names() == before


def test_sync_local_proxy_v1_serves_one_connection_at_a_time(
    threaded_server: ThreadedServer, echo_address: str
) -> None:
    endpoint = threaded_server.endpoint
    with (
        SyncLocalProxy(endpoint, "destination-token", "destination", echo_address, version=1),
        SyncLocalProxy(endpoint, "source-token", "source", 0, version=1) as source,
    ):
        first = socket.create_connection(("127.0.0.1", source.port), timeout=5)
        first.sendall(b"first")
        assert first.recv(16) == b"first"
        waiting = socket.create_connection(("127.0.0.1", source.port), timeout=5)
        waiting.sendall(b"second")
        assert source.open_connections == 1
        first.close()
        assert waiting.recv(16) == b"second"  # served once the first one ended
        waiting.close()


def _silent_websocket_server(closed: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """A server that completes the WebSocket handshake, reads one frame, then drops the
    connection without answering it (a ping waits for a pong that never comes).
    """
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            headers = dict(
                line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
            )
            key = headers["Sec-WebSocket-Key"]
            accept = base64.b64encode(
                hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
            ).decode()
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept}\r\n".encode()
                + f"Sec-WebSocket-Protocol: {headers['Sec-WebSocket-Protocol']}\r\n\r\n".encode()
            )
            conn.recv(4096)  # the ping
        closed.set()

    thread = threading.Thread(target=serve, name="silent server")
    thread.start()
    return listener, thread


def test_sync_ping_fails_when_the_connection_closes_before_the_pong() -> None:
    closed = threading.Event()
    listener, thread = _silent_websocket_server(closed)
    host, port = listener.getsockname()
    try:
        client = SyncTunnelClient.connect(
            f"ws://{host}:{port}", "source-token", "source", version=1
        )
        try:
            with pytest.raises(TunnelClosedError, match="no pong: the connection closed"):
                client.ping(b"hello", timeout=60)  # not a TimeoutError a minute later
            assert closed.is_set()
        finally:
            client.close()
    finally:
        thread.join(10)
        listener.close()
