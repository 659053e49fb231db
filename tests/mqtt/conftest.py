"""Fixtures and helpers for the MQTT notify-path tests: real clients on 127.0.0.1."""

from __future__ import annotations

import os
import queue
import socket
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest

from pytest_securetunnel.mqtt import NotifyBroker
from pytest_securetunnel.mqtt._codec import (
    MQTT_5,
    MQTT_311,
    Connect,
    Packet,
    PacketReader,
    Subscribe,
    encode,
)
from pytest_securetunnel.service import SecureTunnelFake

V311, V5 = paho.MQTTv311, paho.MQTTv5


@pytest.fixture
def fake() -> SecureTunnelFake:
    """A fresh control-plane fake."""
    return SecureTunnelFake(seed=11)


@pytest.fixture
def broker(fake: SecureTunnelFake) -> Iterator[NotifyBroker]:
    """A running broker over ``fake``; its recorded errors fail the test at teardown."""
    with NotifyBroker(fake) as running:
        yield running


def open_tunnel(fake: SecureTunnelFake, thing: str, services: tuple[str, ...] = ("SSH",)) -> Any:
    """OpenTunnel for ``thing`` through the fake's wire entry point."""
    return fake.call(
        "OpenTunnel", {"destinationConfig": {"thingName": thing, "services": list(services)}}
    )


def notify(thing: str) -> str:
    return f"$aws/things/{thing}/tunnels/notify"


class PahoDevice:
    """A paho-mqtt client as a device agent would use it; collects what it receives."""

    def __init__(
        self,
        broker: NotifyBroker,
        client_id: str,
        *,
        protocol: int = V311,
        tls: bool = True,
        cert_thing: str | None = None,
        subscribe: str | None = None,
    ) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.subacks: queue.Queue[list[Any]] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_reasons: list[Any] = []
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        port = broker.port
        if tls:
            cert = broker.client_cert(cert_thing or client_id)
            self.client.tls_set(
                ca_certs=broker.ca_file, certfile=cert.cert_file, keyfile=cert.key_file
            )
            port = broker.tls_port  # type: ignore[assignment]
        self._subscribe = subscribe
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.put(list(codes))
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(broker.host, port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self._subscribe is not None:
            client.subscribe(self._subscribe, qos=1)
        self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnect_reasons.append(reason)
        self.disconnected.set()

    def suback(self, timeout: float = 5.0) -> list[Any]:
        return self.subacks.get(timeout=timeout)

    def message(self, timeout: float = 5.0) -> paho.MQTTMessage:
        return self.messages.get(timeout=timeout)

    def no_message(self, wait: float = 0.2) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        # paho closes the socket pair of loop_start() only when the client is collected,
        # which a reference cycle can delay past the test (a ResourceWarning then).
        self.client._reset_sockets()


class RawClient:
    """A TCP socket speaking MQTT bytes by hand, for malformed and hostile input."""

    def __init__(self, port: int, level: int = MQTT_311, context: ssl.SSLContext | None = None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            self.sock = context.wrap_socket(sock, server_hostname="127.0.0.1") if context else sock
        except BaseException:
            sock.close()
            raise
        self.level = level
        self.reader = PacketReader(level=level)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_packet(self, packet: Packet) -> None:
        self.send(encode(packet, self.level))

    def connect(self, client_id: str, **fields: Any) -> Packet:
        self.send_packet(Connect(client_id, self.level, **fields))
        return self.receive()

    def subscribe(self, topic_filter: str, packet_id: int = 1) -> None:
        self.send_packet(Subscribe(packet_id, [(topic_filter, 1)]))

    def receive(self) -> Packet:
        while True:
            for packet in self.reader.packets():
                return packet
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the broker")
            self.reader.feed(data)

    def closed(self, timeout: float = 5.0) -> bool:
        """Whether the broker closes the connection (reading and dropping what comes)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, ssl.SSLError):
            return True
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.sock.close()


def open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


__all__ = ["MQTT_5", "MQTT_311", "V5", "V311", "PahoDevice", "RawClient", "notify", "open_tunnel"]
