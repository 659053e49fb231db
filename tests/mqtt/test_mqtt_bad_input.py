"""Hostile and broken clients get a disconnect; the broker and other devices carry on."""

from __future__ import annotations

import json
import socket
import ssl
import threading

import pytest

from pytest_securetunnel.mqtt import MqttBrokerError, NotifyBroker
from pytest_securetunnel.mqtt._codec import (
    MQTT_5,
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Publish,
    SubAck,
    Subscribe,
    encode,
)
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import PahoDevice, RawClient, notify, open_sockets, open_tunnel


@pytest.fixture
def witness(broker: NotifyBroker) -> PahoDevice:
    """A well-behaved device that must keep getting its notifications."""
    device = PahoDevice(broker, "witness", subscribe=notify("witness"))
    device.suback()
    yield device  # type: ignore[misc]
    device.close()


def assert_witness_still_served(fake: SecureTunnelFake, witness: PahoDevice) -> None:
    opened = open_tunnel(fake, "witness")
    message = witness.message()
    assert json.loads(message.payload)["clientAccessToken"] == opened["destinationAccessToken"]
    assert not witness.disconnected.is_set()


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x00",  # reserved packet type 0
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x10\xff\xff\xff\xff\x7f",  # remaining length of five bytes
        b"\x10\x04\x00\x04MQ",  # truncated protocol name
        encode(Connect("x", level=3)),  # MQTT 3.1
        b"\x30\x05\x00\x01a\x00\x00",  # PUBLISH before CONNECT
    ],
    ids=["type0", "http", "varint5", "truncated", "mqtt31", "publish-first"],
)
def test_garbage_gets_a_disconnect(
    fake: SecureTunnelFake, broker: NotifyBroker, witness: PahoDevice, garbage: bytes
) -> None:
    client = RawClient(broker.port)
    try:
        client.send(garbage)
        assert client.closed()
    finally:
        client.close()
    assert_witness_still_served(fake, witness)


def test_unsupported_protocol_level_gets_connack_0x01(broker: NotifyBroker) -> None:
    client = RawClient(broker.port)
    try:
        client.send(encode(Connect("old", level=3)))
        assert client.receive() == ConnAck(0x01)
        assert client.closed()
    finally:
        client.close()


@pytest.mark.parametrize("level", [4, 5], ids=["mqtt311", "mqtt5"])
def test_malformed_packet_after_connect(broker: NotifyBroker, level: int) -> None:
    client = RawClient(broker.port, level)
    try:
        client.connect("robot-1")
        client.send(b"\x82\x05\x00\x01\x00\x00\x05")  # SUBSCRIBE, its filter cut short
        if level == MQTT_5:
            disconnect = client.receive()
            assert isinstance(disconnect, Disconnect) and disconnect.reason == 0x81
        assert client.closed()
    finally:
        client.close()


@pytest.mark.parametrize("level", [4, 5], ids=["mqtt311", "mqtt5"])
def test_huge_packet_is_refused_from_its_header(
    fake: SecureTunnelFake, broker: NotifyBroker, witness: PahoDevice, level: int
) -> None:
    client = RawClient(broker.port, level)
    try:
        client.connect("robot-1")
        # Announce a 200 MB PUBLISH: refused from the fixed header, before any body.
        client.send(b"\x30" + bytes([0x80, 0x80, 0xE8, 0x5F]))
        if level == MQTT_5:
            disconnect = client.receive()
            assert isinstance(disconnect, Disconnect) and disconnect.reason == 0x95
        assert client.closed()
    finally:
        client.close()
    assert_witness_still_served(fake, witness)


def test_packet_at_the_limit_passes(broker: NotifyBroker) -> None:
    listener = PahoDevice(broker, "listener", tls=False, subscribe="big")
    client = RawClient(broker.port)
    try:
        listener.suback()
        client.connect("big-sender")
        payload = b"x" * (128 * 1024 - 2 - 3 - 4)  # topic "big", fixed header of 4 bytes
        client.send_packet(Publish("big", payload))
        assert listener.message().payload == payload
    finally:
        listener.close()
        client.close()


def test_subscribe_storm_hits_the_quota_and_others_are_served(
    fake: SecureTunnelFake, broker: NotifyBroker, witness: PahoDevice
) -> None:
    client = RawClient(broker.port, MQTT_5)
    try:
        client.connect("stormy")
        for index in range(50):
            client.send_packet(Subscribe(index + 1, [(f"storm/{index}", 1)]))
        acks = [client.receive() for _ in range(50)]
        assert all(isinstance(ack, SubAck) and ack.reasons == [1] for ack in acks)
        client.send_packet(Subscribe(51, [("storm/one-too-many", 1)]))
        assert client.receive() == SubAck(51, [0x97])  # Quota exceeded
        for index in range(2000):  # the same filters again: no new state
            client.send_packet(Subscribe(index % 65535 + 1, [(f"storm/{index % 50}", 1)]))
        client.send_packet(PingReq())
        replies = [client.receive() for _ in range(2001)]
        assert replies[-1] == PingResp()
    finally:
        client.close()
    assert_witness_still_served(fake, witness)


def test_mqtt311_subscribe_quota_closes_the_connection(broker: NotifyBroker) -> None:
    client = RawClient(broker.port)
    try:
        client.connect("stormy")
        client.send_packet(Subscribe(1, [(f"storm/{i}", 1) for i in range(51)]))
        assert client.closed()
    finally:
        client.close()


def test_disconnect_mid_handshake_and_idle_clients(
    fake: SecureTunnelFake, witness: PahoDevice
) -> None:
    with NotifyBroker(fake, connect_timeout=0.3) as broker:
        assert broker.tls_port is not None
        device = PahoDevice(broker, "witness-2", subscribe=notify("witness-2"))
        device.suback()
        # TCP then nothing: closed after connect_timeout.
        idle = RawClient(broker.port)
        # Half a CONNECT, then gone.
        half = RawClient(broker.port)
        half.send(encode(Connect("half"))[:7])
        half.close()
        # TLS: a ClientHello, then gone; and a TLS client that never finishes.
        raw = socket.create_connection(("127.0.0.1", broker.tls_port))
        raw.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
        raw.close()
        stuck = socket.create_connection(("127.0.0.1", broker.tls_port))
        try:
            assert idle.closed(5)
            stuck.settimeout(5)
            assert stuck.recv(100) == b""
        finally:
            idle.close()
            stuck.close()
        opened = open_tunnel(fake, "witness-2")
        assert (
            json.loads(device.message().payload)["clientAccessToken"]
            == opened["destinationAccessToken"]
        )
        device.close()


def test_keep_alive_expiry_disconnects(broker: NotifyBroker) -> None:
    client = RawClient(broker.port, MQTT_5)
    try:
        client.connect("sleepy", keep_alive=1)
        disconnect = client.receive()  # nothing sent for 1.5 s
        assert isinstance(disconnect, Disconnect) and disconnect.reason == 0x8D
    finally:
        client.close()


@pytest.mark.parametrize("level", [4, 5], ids=["mqtt311", "mqtt5"])
def test_second_connection_with_a_client_id_takes_over(broker: NotifyBroker, level: int) -> None:
    first, second = RawClient(broker.port, level), RawClient(broker.port, level)
    try:
        first.connect("robot-1")
        second.connect("robot-1")
        if level == MQTT_5:
            disconnect = first.receive()
            assert isinstance(disconnect, Disconnect) and disconnect.reason == 0x8E
        assert first.closed()
        second.send_packet(PingReq())
        assert second.receive() == PingResp()
    finally:
        first.close()
        second.close()


def test_qos2_publish_is_refused(broker: NotifyBroker) -> None:
    client = RawClient(broker.port, MQTT_5)
    try:
        client.connect("qos2")
        client.send_packet(Publish("t", b"x", 2, packet_id=1))
        disconnect = client.receive()
        assert isinstance(disconnect, Disconnect) and disconnect.reason == 0x9B
    finally:
        client.close()


def test_bug_inside_the_broker_is_raised_at_stop(
    fake: SecureTunnelFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = NotifyBroker(fake, tls=False).start()
    client = RawClient(broker.port)
    try:

        def broken(self: object, packet: object) -> None:
            raise KeyError("boom")

        monkeypatch.setattr("pytest_securetunnel.mqtt._core.Session._subscribe", broken)
        client.connect("robot-1")
        client.subscribe("x")
        assert client.closed()
    finally:
        client.close()
    with pytest.raises(MqttBrokerError, match=r"(?s)1 unexpected error.*KeyError: 'boom'") as info:
        broker.stop()
    assert isinstance(info.value.__cause__, KeyError)
    assert not [t for t in threading.enumerate() if t.name == "securetunnel-mqtt"]


def test_many_hostile_clients_leave_nothing_behind(fake: SecureTunnelFake) -> None:
    threads, sockets = set(threading.enumerate()), open_sockets()
    with NotifyBroker(fake) as broker:
        assert broker.tls_port is not None
        clients = [RawClient(broker.port) for _ in range(20)]
        for index, client in enumerate(clients):
            client.send(bytes([index * 13 % 256]) * (index + 1))
        context = ssl.create_default_context(cafile=broker.ca_file)
        tls = [socket.create_connection(("127.0.0.1", broker.tls_port)) for _ in range(5)]
        for client in clients:
            client.close()
        for sock in tls:
            sock.close()
        del context
    assert set(threading.enumerate()) - threads == set()
    assert open_sockets() <= sockets
