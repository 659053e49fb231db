"""The synchronous clients on websockets.sync: their own threads, and nothing left after stop."""

from __future__ import annotations

import socket
import threading

import test_local_proxy_sync
from helpers_client import ThreadedServer, thread_names

from pytest_securetunnel.client import SyncEchoPeer, SyncLocalProxy, SyncTunnelClient
from pytest_securetunnel.protocol import MessageType

#: The echo application fixture of the SyncLocalProxy tests.
echo_address = test_local_proxy_sync.echo_address


def own_threads() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate() if thread.name.startswith("Sync"))


def test_sync_client_reads_on_one_thread_of_its_own(threaded_server: ThreadedServer) -> None:
    with SyncTunnelClient.connect(threaded_server.endpoint, "source-token", "source") as client:
        assert own_threads() == ["SyncTunnelClient source"]
        assert repr(client).startswith("<Sync<TunnelClient source aws.iot.securetunneling-3.0")
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
