"""End to end: a real HTTP server on the device side, a real HTTP client on the operator
side, the tunnel in between, and the agent under test wiring it up from the notification."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from agent import DeviceAgent

from pytest_securetunnel import SecureTunnelFake, SyncLocalProxy, TunnelProxy


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from the device, you asked for {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def device_http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def test_operator_reaches_the_device_http_server_through_the_tunnel(
    securetunnel: SecureTunnelFake,
    securetunnel_client: object,
    securetunnel_proxy: TunnelProxy,
    device_http_port: int,
) -> None:
    agent = DeviceAgent(
        securetunnel_proxy.tls_endpoint,
        ports={"HTTP": device_http_port},
        ssl=securetunnel_proxy.ssl_context,
    )
    securetunnel.notifications.subscribe(
        lambda n: agent.on_notification(n.topic, n.payload_bytes), thing_name="robot-7"
    )
    opened = securetunnel_client.open_tunnel(  # type: ignore[attr-defined]
        destinationConfig={"thingName": "robot-7", "services": ["HTTP"]}
    )
    try:
        with SyncLocalProxy(
            securetunnel_proxy.tls_endpoint,
            opened["sourceAccessToken"],
            "source",
            {"HTTP": 0},
            ssl=securetunnel_proxy.ssl_context,
        ) as operator:
            url = f"http://127.0.0.1:{operator.ports['HTTP']}/status"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.read() == b"hello from the device, you asked for /status"
        tunnel = securetunnel.tunnel(opened["tunnelId"])
        assert tunnel.destination.status == "CONNECTED"
    finally:
        agent.stop()
