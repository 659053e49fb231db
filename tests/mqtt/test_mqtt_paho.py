"""paho-mqtt devices (MQTT 3.1.1 and 5, mutual TLS and plain TCP) get the fake's notifications."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from pytest_securetunnel.mqtt import NotifyBroker
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import V5, V311, PahoDevice, notify, open_sockets, open_tunnel


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqtt311", "mqtt5"])
@pytest.mark.parametrize("tls", [True, False], ids=["mtls", "tcp"])
def test_device_receives_the_open_tunnel_notification(
    fake: SecureTunnelFake, broker: NotifyBroker, protocol: int, tls: bool
) -> None:
    device = PahoDevice(broker, "robot-1", protocol=protocol, tls=tls, subscribe=notify("robot-1"))
    try:
        assert [getattr(code, "value", code) for code in device.suback()] == [1]
        broker.wait_for_subscriber("robot-1")
        opened = open_tunnel(fake, "robot-1", ("SSH", "HTTP"))
        message = device.message()
        assert message.topic == "$aws/things/robot-1/tunnels/notify"
        assert message.qos == 1
        assert message.retain is False
        assert json.loads(message.payload) == {
            "clientAccessToken": opened["destinationAccessToken"],
            "clientMode": "destination",
            "region": "us-east-1",
            "services": ["SSH", "HTTP"],
        }
        assert message.payload == fake.notifications[0].payload_bytes
    finally:
        device.close()


def test_rotation_of_the_destination_token_is_published_too(
    fake: SecureTunnelFake, broker: NotifyBroker
) -> None:
    device = PahoDevice(broker, "robot-2", subscribe=notify("robot-2"))
    try:
        broker.wait_for_subscriber("robot-2")
        opened = open_tunnel(fake, "robot-2")
        first = json.loads(device.message().payload)
        rotated = fake.call(
            "RotateTunnelAccessToken",
            {
                "tunnelId": opened["tunnelId"],
                "clientMode": "DESTINATION",
                "destinationConfig": {"thingName": "robot-2", "services": ["SSH"]},
            },
        )
        second = json.loads(device.message().payload)
        assert first["clientAccessToken"] == opened["destinationAccessToken"]
        assert second["clientAccessToken"] == rotated["destinationAccessToken"]
        assert second["clientAccessToken"] != first["clientAccessToken"]
    finally:
        device.close()


def test_each_device_gets_only_its_own_notifications(
    fake: SecureTunnelFake, broker: NotifyBroker
) -> None:
    one = PahoDevice(broker, "robot-a", subscribe=notify("robot-a"))
    two = PahoDevice(broker, "robot-b", protocol=V5, subscribe=notify("robot-b"))
    try:
        broker.wait_for_subscriber("robot-a")
        broker.wait_for_subscriber("robot-b")
        a = open_tunnel(fake, "robot-a")
        b = open_tunnel(fake, "robot-b")
        assert json.loads(one.message().payload)["clientAccessToken"] == a["destinationAccessToken"]
        assert json.loads(two.message().payload)["clientAccessToken"] == b["destinationAccessToken"]
        assert one.no_message() and two.no_message()
    finally:
        one.close()
        two.close()


def test_a_tunnel_without_a_thing_publishes_nothing(
    fake: SecureTunnelFake, broker: NotifyBroker
) -> None:
    device = PahoDevice(broker, "robot-3", subscribe=notify("robot-3"))
    try:
        broker.wait_for_subscriber("robot-3")
        fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
        assert device.no_message(0.3)
    finally:
        device.close()


def test_devices_can_publish_and_subscribe_to_ordinary_topics(broker: NotifyBroker) -> None:
    listener = PahoDevice(broker, "listener", tls=False, subscribe="telemetry/+")
    talker = PahoDevice(broker, "talker", protocol=V5, tls=False)
    try:
        listener.suback()
        talker.client.publish("telemetry/talker", b"21.5", qos=1).wait_for_publish(5)
        message = listener.message()
        assert (message.topic, message.payload, message.qos) == ("telemetry/talker", b"21.5", 1)
    finally:
        listener.close()
        talker.close()


def test_wait_for_subscriber_times_out_with_what_is_connected(broker: NotifyBroker) -> None:
    device = PahoDevice(broker, "robot-9", tls=False, subscribe="other/topic")
    try:
        device.suback()
        with pytest.raises(TimeoutError, match=r"robot-7/tunnels/notify.*'robot-9': \['other/"):
            broker.wait_for_subscriber("robot-7", timeout=0.1)
    finally:
        device.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_stop_disconnects_clients_and_leaves_no_thread_socket_or_file(
    fake: SecureTunnelFake,
) -> None:
    threads, sockets = set(threading.enumerate()), open_sockets()
    started = time.perf_counter()
    broker = NotifyBroker(fake).start()
    start_ms = (time.perf_counter() - started) * 1000
    ca_file = broker.ca_file
    assert ca_file is not None and os.path.exists(ca_file)
    device = PahoDevice(broker, "robot-1", protocol=V5, subscribe=notify("robot-1"))
    device.suback()
    started = time.perf_counter()
    broker.stop()
    stop_ms = (time.perf_counter() - started) * 1000
    assert device.disconnected.wait(5)
    device.close()
    assert str(device.disconnect_reasons[0]) == "Server shutting down"
    assert set(threading.enumerate()) - threads == set()
    assert open_sockets() <= sockets
    assert not os.path.exists(ca_file)
    assert start_ms < 1000 and stop_ms < 1500, (start_ms, stop_ms)
    with pytest.raises(RuntimeError, match="not running"):
        _ = broker.port
    assert len(fake.notifications.__dict__["_subscribers"]) == 0


def test_restart_and_repr(fake: SecureTunnelFake) -> None:
    broker = NotifyBroker(fake)
    assert repr(broker) == "<NotifyBroker stopped>"
    with broker:
        assert repr(broker).startswith("<NotifyBroker mqtt://127.0.0.1:")
        with pytest.raises(RuntimeError, match="already running"):
            broker.start()
    with broker:
        assert broker.tls_port is not None


def test_retained_messages_reach_exact_subscribers_only(broker: NotifyBroker) -> None:
    talker = PahoDevice(broker, "talker", tls=False)
    talker.client.publish("config/robot", b"v2", qos=1, retain=True).wait_for_publish(5)
    exact = PahoDevice(broker, "exact", tls=False, subscribe="config/robot")
    wild = PahoDevice(broker, "wild", protocol=V5, tls=False, subscribe="config/+")
    try:
        message = exact.message()
        assert (message.payload, message.retain) == (b"v2", True)
        wild.suback()
        assert wild.no_message()  # AWS IoT Core: no retained messages for wildcards
    finally:
        for device in (talker, exact, wild):
            device.close()


def test_will_is_published_when_a_device_drops(broker: NotifyBroker) -> None:
    from pytest_securetunnel.mqtt._codec import Will

    from .conftest import RawClient

    listener = PahoDevice(broker, "listener", tls=False, subscribe="status/robot")
    dropped = RawClient(broker.port)
    try:
        listener.suback()
        dropped.connect("robot", will=Will("status/robot", b"offline", 1))
        dropped.close()  # no DISCONNECT: the Will goes out
        assert listener.message().payload == b"offline"
    finally:
        listener.close()
