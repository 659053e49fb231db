"""Publishing into a broker the user runs: Debian's mosquitto on an ephemeral port."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from pytest_securetunnel.mqtt import NotifyBroker
from pytest_securetunnel.mqtt._external import parse_url
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import PahoDevice, notify, open_tunnel

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def mosquitto() -> Iterator[str]:
    """A mosquitto broker on 127.0.0.1; its URL."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto)")
    with tempfile.TemporaryDirectory() as root:
        for _ in range(5):  # the port is free when chosen; retry if taken before bind
            port = _free_port()
            config = os.path.join(root, "mosquitto.conf")
            with open(config, "w") as out:
                out.write(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
            process = subprocess.Popen(
                [MOSQUITTO, "-c", config],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            try:
                for _ in range(200):
                    if process.poll() is not None:
                        break
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
                    except OSError:
                        process_wait(process, 0.025)
                        continue
                    yield f"mqtt://127.0.0.1:{port}"
                    return
            finally:
                process.terminate()
                try:
                    process.wait(5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                if process.stdout is not None:
                    process.stdout.close()
        pytest.fail("mosquitto did not start")


def process_wait(process: subprocess.Popen[str], seconds: float) -> None:
    """Wait for the process to exit, at most ``seconds`` (a bounded poll, not a sleep)."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(seconds)


def test_notifications_are_published_into_mosquitto(fake: SecureTunnelFake, mosquitto: str) -> None:
    with NotifyBroker(fake, url=mosquitto) as broker:
        assert (broker.host, broker.port, broker.tls_port) == (
            "127.0.0.1",
            int(mosquitto.rsplit(":", 1)[1]),
            None,
        )
        device = PahoDevice(broker, "robot-1", tls=False, subscribe=notify("robot-1"))
        try:
            device.suback()
            opened = open_tunnel(fake, "robot-1")
            message = device.message()
            assert message.topic == notify("robot-1")
            assert message.qos == 1 and message.retain is False
            assert (
                json.loads(message.payload)["clientAccessToken"] == opened["destinationAccessToken"]
            )
        finally:
            device.close()
        with pytest.raises(RuntimeError, match="external broker"):
            broker.client_cert("robot-1")
        with pytest.raises(RuntimeError, match="cannot see an external broker"):
            broker.wait_for_subscriber("robot-1")


def test_fixture_uses_the_url_from_the_command_line(
    pytester: pytest.Pytester, mosquitto: str
) -> None:
    pytester.makepyfile(
        """
        def test_external(securetunnel_mqtt):
            assert securetunnel_mqtt.url is not None
            assert securetunnel_mqtt.tls_port is None
        """
    )
    result = pytester.runpytest_inprocess("--securetunnel-mqtt-url", mosquitto)
    result.assert_outcomes(passed=1)


def test_unreachable_broker_is_a_clear_error(fake: SecureTunnelFake) -> None:
    port = _free_port()
    with pytest.raises(
        ConnectionError, match=rf"cannot connect to the MQTT broker at 127.0.0.1:{port}"
    ):
        NotifyBroker(fake, url=f"mqtt://127.0.0.1:{port}").start()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:1883", "scheme must be mqtt://"),
        ("mqtt://:1883", "has no host"),
        ("mqtt://127.0.0.1:99999", "Port out of range"),
    ],
)
def test_bad_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_default_ports() -> None:
    assert parse_url("mqtt://broker").port == 1883
    assert parse_url("mqtts://broker").port == 8883
