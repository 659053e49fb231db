"""Publishing the fake's notifications into a broker the user already runs (mosquitto...)."""

from __future__ import annotations

import threading
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["ExternalPublisher", "parse_url"]


@dataclass(frozen=True)
class BrokerUrl:
    """``mqtt://host:port`` (plain TCP) or ``mqtts://host:port`` (TLS)."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"


def parse_url(url: str) -> BrokerUrl:
    """Parse a broker URL; raise ``ValueError`` naming what is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(
            f"broker URL {url!r}: the scheme must be mqtt:// (plain TCP) or mqtts:// (TLS)"
        )
    if not parts.hostname:
        raise ValueError(f"broker URL {url!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"broker URL {url!r}: {exc}") from None
    if port is None:
        port = 8883 if parts.scheme == "mqtts" else 1883
    return BrokerUrl(parts.scheme, parts.hostname, port, parts.username, parts.password)


class ExternalPublisher:
    """A paho-mqtt client that publishes notifications (QoS 1, not retained) to a broker."""

    def __init__(self, url: str, *, ca_file: str | None = None, timeout: float = 10.0) -> None:
        """Configure; :meth:`start` connects."""
        self.url = parse_url(url)
        self.ca_file = ca_file
        self.timeout = timeout
        self._client: Any = None
        self._pending: list[Any] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Connect and start paho's network thread; raise ``ConnectionError`` on failure."""
        try:
            import paho.mqtt.client as paho
            from paho.mqtt.enums import CallbackAPIVersion
        except ImportError as exc:
            raise ImportError(
                "publishing into an external MQTT broker needs paho-mqtt: "
                f"pip install 'pytest-securetunnel[mqtt]' ({exc})"
            ) from exc
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pytest-securetunnel-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv311,
        )
        if self.url.username is not None:
            client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            client.tls_set(ca_certs=self.ca_file)
        connected = threading.Event()
        outcome: list[str] = []

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            outcome.append(str(reason))
            connected.set()

        client.on_connect = on_connect
        try:
            client.connect(self.url.host, self.url.port, keepalive=60)
        except OSError as exc:
            raise ConnectionError(
                f"cannot connect to the MQTT broker at {self.url.host}:{self.url.port}: {exc}"
            ) from exc
        client.loop_start()
        if not connected.wait(self.timeout) or outcome[0] != "Success":
            client.loop_stop()
            client.disconnect()
            got = outcome[0] if outcome else f"no CONNACK within {self.timeout} s"
            raise ConnectionError(
                f"the MQTT broker at {self.url.host}:{self.url.port} refused the connection: {got}"
            )
        self._client = client

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue one QoS 1 publish (thread-safe)."""
        client = self._client
        if client is None:
            return
        info = client.publish(topic, payload, qos=1, retain=False)
        with self._lock:
            self._pending = [p for p in self._pending if not p.is_published()]
            self._pending.append(info)

    def stop(self) -> None:
        """Wait for every publish to be acknowledged, then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            with self._lock:
                pending, self._pending = self._pending, []
            for info in pending:
                info.wait_for_publish(self.timeout)
            unacked = [info.mid for info in pending if not info.is_published()]
            if unacked:
                raise ConnectionError(
                    f"{len(unacked)} notification(s) were not acknowledged by the broker at "
                    f"{self.url.host}:{self.url.port} within {self.timeout} s"
                )
        finally:
            client.disconnect()
            client.loop_stop()
