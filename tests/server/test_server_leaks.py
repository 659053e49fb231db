"""The server stops everything it started: threads, sockets, files, data-plane connections."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from urllib.parse import urlsplit

import pytest
from helpers_server import call

from pytest_securetunnel.server import SecureTunnelServer


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def test_stop_leaves_no_thread_socket_or_file_behind() -> None:
    from pytest_securetunnel.client import SyncTunnelClient

    SecureTunnelServer().start().stop()  # warm up process-wide caches (the trustme CA)
    threads, fds = set(threading.enumerate()), open_fds()
    for _ in range(2):
        server = SecureTunnelServer().start()
        assert server.ca_file is not None and os.path.exists(server.ca_file)
        ca_file = server.ca_file
        parts = urlsplit(server.endpoint_url)
        keep_alive = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        keep_alive.request(
            "POST",
            "/",
            body=b"{}",
            headers={"X-Amz-Target": "IoTSecuredTunneling.OpenTunnel"},
        )
        answer = keep_alive.getresponse()
        assert answer.status == 200
        token = json.loads(answer.read())["sourceAccessToken"]
        source = SyncTunnelClient.connect(server.data_endpoint, token, "source")
        waiting = threading.Thread(
            target=call, args=(server.endpoint_url, "ListTunnels"), daemon=True
        )
        waiting.start()
        waiting.join(10)
        server.stop()
        source.wait_closed(timeout=10)
        source.close()
        keep_alive.close()
        assert not os.path.exists(ca_file)
    # Only what this test started counts: under xdist, threads and descriptors of
    # earlier tests in the same worker may still be finishing while it runs.
    new_threads = [t.name for t in set(threading.enumerate()) - threads]
    assert new_threads == [], f"threads left running: {new_threads}"
    new_fds = {fd: _target(fd) for fd in open_fds() - fds}
    assert new_fds == {}, f"descriptors left open: {new_fds}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def test_stop_cuts_idle_keep_alive_connections_at_once() -> None:
    server = SecureTunnelServer(data_plane=False).start()
    parts = urlsplit(server.endpoint_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("POST", "/", b"{}", {"X-Amz-Target": "IoTSecuredTunneling.ListTunnels"})
        connection.getresponse().read()
        assert connection.sock is not None
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 5
        assert connection.sock.recv(1) == b""  # the server closed it
    finally:
        connection.close()
