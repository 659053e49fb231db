"""The AWS IoT Device SDK v2 (MQTT 3.1.1 and 5 over awscrt) and aiomqtt, over mutual TLS."""

from __future__ import annotations

import asyncio
import json
import queue
from concurrent.futures import Future
from typing import Any

import pytest

from pytest_securetunnel.mqtt import NotifyBroker
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import notify, open_tunnel

mqtt_connection_builder = pytest.importorskip("awsiot.mqtt_connection_builder")
mqtt5_client_builder = pytest.importorskip("awsiot.mqtt5_client_builder")
aiomqtt = pytest.importorskip("aiomqtt")


def test_awsiotsdk_mqtt311_connection_receives_the_notification(
    fake: SecureTunnelFake, broker: NotifyBroker
) -> None:
    from awscrt import mqtt

    cert = broker.client_cert("sdk-thing")
    received: queue.Queue[tuple[str, bytes]] = queue.Queue()
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint=broker.host,
        port=broker.tls_port,
        cert_filepath=cert.cert_file,
        pri_key_filepath=cert.key_file,
        ca_filepath=broker.ca_file,
        client_id="sdk-thing",
        clean_session=True,
        keep_alive_secs=30,
    )
    connection.connect().result(10)
    try:
        subscribed, _ = connection.subscribe(
            topic=notify("sdk-thing"),
            qos=mqtt.QoS.AT_LEAST_ONCE,
            callback=lambda topic, payload, **kwargs: received.put((topic, payload)),
        )
        assert subscribed.result(10)["qos"] == mqtt.QoS.AT_LEAST_ONCE
        opened = open_tunnel(fake, "sdk-thing")
        topic, payload = received.get(timeout=10)
        assert topic == notify("sdk-thing")
        assert json.loads(payload)["clientAccessToken"] == opened["destinationAccessToken"]
    finally:
        connection.disconnect().result(10)


def test_awsiotsdk_mqtt5_client_receives_the_notification(
    fake: SecureTunnelFake, broker: NotifyBroker
) -> None:
    from awscrt import mqtt5

    cert = broker.client_cert("sdk5-thing")
    received: queue.Queue[Any] = queue.Queue()
    connected: Future[None] = Future()
    stopped: Future[None] = Future()
    client = mqtt5_client_builder.mtls_from_path(
        endpoint=broker.host,
        port=broker.tls_port,
        cert_filepath=cert.cert_file,
        pri_key_filepath=cert.key_file,
        ca_filepath=broker.ca_file,
        client_id="sdk5-thing",
        on_publish_received=lambda data: received.put(data.publish_packet),
        on_lifecycle_connection_success=lambda data: connected.set_result(None),
        on_lifecycle_stopped=lambda data: stopped.set_result(None),
    )
    client.start()
    try:
        connected.result(10)
        suback = client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(notify("sdk5-thing"), mqtt5.QoS.AT_LEAST_ONCE)]
            )
        ).result(10)
        assert suback.reason_codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
        refused = client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(notify("someone-else"), mqtt5.QoS.AT_LEAST_ONCE)]
            )
        ).result(10)
        assert refused.reason_codes == [mqtt5.SubackReasonCode.NOT_AUTHORIZED]
        opened = open_tunnel(fake, "sdk5-thing")
        packet = received.get(timeout=10)
        assert packet.topic == notify("sdk5-thing")
        assert packet.qos == mqtt5.QoS.AT_LEAST_ONCE
        assert json.loads(packet.payload)["clientAccessToken"] == opened["destinationAccessToken"]
    finally:
        client.stop()
        stopped.result(10)


@pytest.mark.parametrize("version", ["311", "5"])
async def test_aiomqtt_receives_the_notification(
    fake: SecureTunnelFake, broker: NotifyBroker, version: str
) -> None:
    cert = broker.client_cert("aio-thing")
    protocol = aiomqtt.ProtocolVersion.V5 if version == "5" else aiomqtt.ProtocolVersion.V311
    async with aiomqtt.Client(
        broker.host,
        broker.tls_port,  # type: ignore[arg-type]
        identifier="aio-thing",
        protocol=protocol,
        tls_context=cert.ssl_context(),
    ) as client:
        await client.subscribe(notify("aio-thing"), qos=1)
        opened = await asyncio.to_thread(open_tunnel, fake, "aio-thing")
        async with asyncio.timeout(10) if hasattr(asyncio, "timeout") else _nullcontext():
            async for message in client.messages:
                assert message.topic.matches(notify("aio-thing"))
                assert message.qos == 1
                body = json.loads(message.payload)  # type: ignore[arg-type]
                assert body["clientAccessToken"] == opened["destinationAccessToken"]
                break


class _nullcontext:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
