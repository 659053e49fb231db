"""The recommended device policy, both ways: what a device may and may not do.

AWS IoT Core closes an MQTT 3.1.1 connection on an unauthorized SUBSCRIBE or PUBLISH
(3.1.1 has no way to refuse one); MQTT 5 answers SUBACK / PUBACK with reason code 0x87
Not authorized, or DISCONNECT 0x87 where there is no acknowledgement.
"""

from __future__ import annotations

import json
import ssl

import pytest
import trustme

from pytest_securetunnel.mqtt import NotifyBroker
from pytest_securetunnel.mqtt._codec import (
    MQTT_5,
    Disconnect,
    PubAck,
    Publish,
    SubAck,
)
from pytest_securetunnel.mqtt._core import notify_filter_reaches_other_things
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import V5, V311, PahoDevice, RawClient, notify, open_tunnel


@pytest.mark.parametrize(
    ("topic_filter", "refused"),
    [
        ("$aws/things/robot-1/tunnels/notify", False),
        ("$aws/things/robot-2/tunnels/notify", True),
        ("$aws/things/+/tunnels/notify", True),
        ("$aws/things/robot-1/tunnels/+", True),
        ("$aws/things/robot-1/#", True),
        ("$aws/#", True),
        ("$aws/things/+/shadow/update", False),
        ("$aws/things/robot-1/tunnels", False),
        ("#", False),  # wildcards never match a topic starting with "$"
        ("+/things/+/tunnels/notify", False),
        ("telemetry/#", False),
    ],
)
def test_which_filters_reach_another_things_notify_topic(topic_filter: str, refused: bool) -> None:
    assert notify_filter_reaches_other_things(topic_filter, "robot-1") is refused


def test_mqtt311_subscription_to_another_things_topic_closes_the_connection(
    broker: NotifyBroker,
) -> None:
    # The certificate is robot-1's; the client id claims robot-2: the certificate counts.
    spy = PahoDevice(broker, "robot-2", cert_thing="robot-1", protocol=V311)
    try:
        spy.client.subscribe(notify("robot-2"), qos=1)
        assert spy.disconnected.wait(5)
        assert spy.subacks.empty()
    finally:
        spy.close()


def test_mqtt5_subscription_to_another_things_topic_gets_suback_0x87(
    fake: SecureTunnelFake, broker: NotifyBroker
) -> None:
    spy = PahoDevice(broker, "robot-2", cert_thing="robot-1", protocol=V5)
    try:
        spy.client.subscribe([(notify("robot-2"), 1), (notify("robot-1"), 1)])
        codes = spy.suback()
        assert [code.value for code in codes] == [0x87, 0x01]
        assert str(codes[0]) == "Not authorized"
        open_tunnel(fake, "robot-2")
        opened = open_tunnel(fake, "robot-1")
        message = spy.message()  # still connected, and gets only its own thing's
        assert json.loads(message.payload)["clientAccessToken"] == opened["destinationAccessToken"]
        assert spy.no_message() and not spy.disconnected.is_set()
    finally:
        spy.close()


@pytest.mark.parametrize("level", [4, 5], ids=["mqtt311", "mqtt5"])
def test_plain_tcp_client_id_stands_for_the_thing(broker: NotifyBroker, level: int) -> None:
    own = RawClient(broker.port, level)
    spy = RawClient(broker.port, level)
    try:
        own.connect("robot-1")
        own.subscribe(notify("robot-1"))
        assert own.receive() == SubAck(1, [1])
        spy.connect("spy")
        spy.subscribe("$aws/things/+/tunnels/notify")
        if level == MQTT_5:
            assert spy.receive() == SubAck(1, [0x87])
        else:
            assert spy.closed()
    finally:
        own.close()
        spy.close()


def test_mqtt311_publish_to_a_notify_topic_closes_the_connection(
    broker: NotifyBroker,
) -> None:
    device = PahoDevice(broker, "robot-1", subscribe=notify("robot-1"))
    forger = RawClient(broker.port)
    try:
        device.suback()
        forger.connect("robot-1-forger")
        forger.send_packet(Publish(notify("robot-1"), b'{"clientAccessToken":"x"}', 1, packet_id=7))
        assert forger.closed()
        assert device.no_message(0.3)
    finally:
        device.close()
        forger.close()


def test_mqtt5_publish_to_a_notify_topic_is_refused_with_0x87(broker: NotifyBroker) -> None:
    device = PahoDevice(broker, "robot-1", subscribe=notify("robot-1"))
    forger = RawClient(broker.port, MQTT_5)
    try:
        device.suback()
        forger.connect("robot-1")  # even the thing itself may not publish there
        forger.send_packet(Publish(notify("robot-1"), b"forged", 1, packet_id=7))
        ack = forger.receive()
        assert isinstance(ack, PubAck) and (ack.packet_id, ack.reason) == (7, 0x87)
        forger.send_packet(Publish(notify("robot-1"), b"forged", 0))
        refused = forger.receive()
        assert isinstance(refused, Disconnect) and refused.reason == 0x87
        assert forger.closed()
        assert device.no_message(0.3)
    finally:
        device.close()
        forger.close()


@pytest.mark.parametrize("protocol", [V311, V5], ids=["mqtt311", "mqtt5"])
def test_without_authorization_anything_goes(fake: SecureTunnelFake, protocol: int) -> None:
    with NotifyBroker(fake, authorization=False) as broker:
        watcher = PahoDevice(
            broker, "fleet-watcher", protocol=protocol, subscribe="$aws/things/+/tunnels/notify"
        )
        try:
            codes = watcher.suback()
            assert [getattr(code, "value", code) for code in codes] == [1]
            opened = open_tunnel(fake, "robot-5")
            message = watcher.message()
            assert message.topic == notify("robot-5")
            assert (
                json.loads(message.payload)["clientAccessToken"] == opened["destinationAccessToken"]
            )
        finally:
            watcher.close()


def _tls_refused(port: int, context: ssl.SSLContext) -> bool:
    try:
        client = RawClient(port, context=context)
    except OSError:  # ssl.SSLError is an OSError
        return True
    try:
        client.connect("robot-1")
    except OSError:
        return True
    finally:
        client.close()
    return False


def test_tls_needs_a_client_certificate_from_the_brokers_ca(broker: NotifyBroker) -> None:
    assert broker.tls_port is not None and broker.ca_file is not None
    no_cert = ssl.create_default_context(cafile=broker.ca_file)
    assert _tls_refused(broker.tls_port, no_cert)
    stranger = ssl.create_default_context(cafile=broker.ca_file)
    trustme.CA().issue_cert("robot-1.example").configure_cert(stranger)
    assert _tls_refused(broker.tls_port, stranger)
    good = broker.client_cert("robot-1").ssl_context()
    assert not _tls_refused(broker.tls_port, good)


def test_client_cert_is_per_thing_and_checks_the_name(broker: NotifyBroker) -> None:
    one = broker.client_cert("robot-1")
    assert broker.client_cert("robot-1") == one
    assert broker.client_cert("robot-2").fingerprint != one.fingerprint
    assert one.ca_file == broker.ca_file
    long_name = "r" * 128
    assert broker.client_cert(long_name).thing_name == long_name
    with pytest.raises(ValueError, match=r"thing name 'robot 1' is not valid.*a-zA-Z0-9:_-"):
        broker.client_cert("robot 1")
