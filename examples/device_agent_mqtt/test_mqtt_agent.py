"""End to end, the way it runs in the field: fleet code opens a tunnel with boto3, the
agent hears of it over MQTT (mutual TLS, its own device certificate), starts a
destination local proxy, and an operator's TCP client reaches a service on the device.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from mqtt_agent import MqttDeviceAgent, ProxyStarter, RunningProxy, toolkit_local_proxy

from pytest_securetunnel import SecureTunnelFake, SyncLocalProxy, TunnelProxy
from pytest_securetunnel.client import LocalProxyNotFound, ReferenceLocalProxy, find_localproxy
from pytest_securetunnel.mqtt import NotifyBroker

THING = "robot-7"


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A TCP echo service on the device."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def reference_local_proxy(proxy: TunnelProxy) -> ProxyStarter:
    """A starter running the reference C++ ``localproxy``, as most devices do.

    It gets the proxy's TLS endpoint as ``-e HOST:PORT`` and its CA directory as ``-c``.
    """

    def start(endpoint: str, token: str, services: dict[str, str]) -> RunningProxy:
        local = ReferenceLocalProxy(
            token, "destination", services, endpoint=proxy.host_port, ca_dir=proxy.ca_dir
        )
        return local.start().wait_ready()

    return start


@pytest.fixture(params=["toolkit", "localproxy"])
def agent(
    request: pytest.FixtureRequest,
    securetunnel_mqtt: NotifyBroker,
    securetunnel_proxy: TunnelProxy,
    echo_port: int,
) -> Iterator[MqttDeviceAgent]:
    """The agent under test, connected and subscribed; its destination local proxy is the
    toolkit's ``SyncLocalProxy`` or, where the binary is installed, the reference one."""
    if request.param == "localproxy":
        try:
            find_localproxy()
        except LocalProxyNotFound as exc:
            pytest.skip(str(exc))
        start_proxy = reference_local_proxy(securetunnel_proxy)
    else:
        start_proxy = toolkit_local_proxy(securetunnel_proxy.ssl_context)
    cert = securetunnel_mqtt.client_cert(THING)
    running = MqttDeviceAgent(
        THING,
        mqtt_host=securetunnel_mqtt.host,
        mqtt_port=securetunnel_mqtt.tls_port,  # type: ignore[arg-type]
        cert_file=cert.cert_file,
        key_file=cert.key_file,
        ca_file=cert.ca_file,
        data_endpoint=securetunnel_proxy.tls_endpoint,
        services={"SSH": f"127.0.0.1:{echo_port}"},
        start_proxy=start_proxy,
    ).start()
    assert running.subscribed.wait(10)
    yield running
    running.stop()


def echo_through(operator: SyncLocalProxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", operator.ports["SSH"]), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while len(received) < len(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def source_proxy(proxy: TunnelProxy, token: str) -> SyncLocalProxy:
    return SyncLocalProxy(
        proxy.tls_endpoint, token, "source", {"SSH": 0}, ssl=proxy.ssl_context
    ).start()


def test_operator_reaches_the_device_echo_service_through_the_tunnel(
    securetunnel: SecureTunnelFake,
    securetunnel_client: Any,
    securetunnel_proxy: TunnelProxy,
    agent: MqttDeviceAgent,
) -> None:
    opened = securetunnel_client.open_tunnel(
        destinationConfig={"thingName": THING, "services": ["SSH"]}
    )
    assert agent.wait_for_token(1) == opened["destinationAccessToken"]
    operator = source_proxy(securetunnel_proxy, opened["sourceAccessToken"])
    try:
        assert echo_through(operator, b"uptime\n" * 1000) == b"uptime\n" * 1000
    finally:
        operator.stop()
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["destinationConnectionState"]["status"] == "CONNECTED"


def test_agent_reconnects_with_a_rotated_token(
    securetunnel_client: Any, securetunnel_proxy: TunnelProxy, agent: MqttDeviceAgent
) -> None:
    opened = securetunnel_client.open_tunnel(
        destinationConfig={"thingName": THING, "services": ["SSH"]}
    )
    first = agent.wait_for_token(1)
    rotated = securetunnel_client.rotate_tunnel_access_token(
        tunnelId=opened["tunnelId"],
        clientMode="ALL",
        destinationConfig={"thingName": THING, "services": ["SSH"]},
    )
    second = agent.wait_for_token(2)
    assert (first, second) == (opened["destinationAccessToken"], rotated["destinationAccessToken"])
    operator = source_proxy(securetunnel_proxy, rotated["sourceAccessToken"])
    try:
        assert echo_through(operator, b"after rotation") == b"after rotation"
    finally:
        operator.stop()


def test_tunnel_expiry_closes_the_agents_proxy(
    securetunnel_client: Any,
    securetunnel_clock: Any,
    securetunnel_proxy: TunnelProxy,
    agent: MqttDeviceAgent,
) -> None:
    opened = securetunnel_client.open_tunnel(
        destinationConfig={"thingName": THING, "services": ["SSH"]},
        timeoutConfig={"maxLifetimeTimeoutMinutes": 5},
    )
    agent.wait_for_token(1)
    securetunnel_proxy.wait_for("connected", mode="destination")
    securetunnel_clock.advance(minutes=5)
    if isinstance(agent.proxy, ReferenceLocalProxy):
        assert agent.proxy.wait_exit(timeout=10) == 0  # localproxy exits 0 on a closed tunnel
    else:
        assert isinstance(agent.proxy, SyncLocalProxy)
        agent.proxy.wait_closed(timeout=10)
    tunnel = securetunnel_client.describe_tunnel(tunnelId=opened["tunnelId"])["tunnel"]
    assert tunnel["status"] == "CLOSED"
