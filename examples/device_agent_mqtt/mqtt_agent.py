"""A device agent as it runs on a device: MQTT in, a destination local proxy out.

It connects to AWS IoT Core with the device certificate (paho-mqtt, mutual TLS),
subscribes to ``$aws/things/THING/tunnels/notify`` and, for each notification, starts a
destination local proxy with the token it carries, for the services it names. A new
notification for the same tunnel (a rotated destination token) replaces the proxy: the
agent reconnects with the new token.

Nothing here knows about the fake: in a test the endpoints point at 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from pytest_securetunnel import SyncLocalProxy

log = logging.getLogger("device_agent")


class RunningProxy(Protocol):
    """What the agent needs of a started local proxy."""

    def stop(self) -> None: ...


#: Starts a destination local proxy: (data endpoint, access token, service -> address).
#: The default is the toolkit's ``SyncLocalProxy``; a test or a device may pass one that
#: runs the reference C++ ``localproxy`` binary instead.
ProxyStarter = Callable[[str, str, dict[str, str]], RunningProxy]


def toolkit_local_proxy(ssl_context: ssl.SSLContext | None) -> ProxyStarter:
    """A starter running pytest-securetunnel's ``SyncLocalProxy`` in destination mode."""

    def start(endpoint: str, token: str, services: dict[str, str]) -> RunningProxy:
        return SyncLocalProxy(endpoint, token, "destination", services, ssl=ssl_context).start()

    return start


class MqttDeviceAgent:
    """Waits for tunnel notifications over MQTT and serves the device's services."""

    def __init__(
        self,
        thing_name: str,
        *,
        mqtt_host: str,
        mqtt_port: int,
        cert_file: str,
        key_file: str,
        ca_file: str,
        data_endpoint: str,
        services: dict[str, str],
        start_proxy: ProxyStarter,
    ) -> None:
        self.thing_name = thing_name
        self.topic = f"$aws/things/{thing_name}/tunnels/notify"
        self.data_endpoint = data_endpoint
        self.services = services  # service name -> "host:port" on the device
        self.start_proxy = start_proxy
        self.subscribed = threading.Event()
        self.tokens: list[str] = []  # every token received, oldest first
        self.proxy: RunningProxy | None = None
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing_name)
        self._client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._host, self._port = mqtt_host, mqtt_port

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> MqttDeviceAgent:
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._client._reset_sockets()  # paho keeps loop_start's socket pair until collected
        with self._lock:
            proxy, self.proxy = self.proxy, None
        if proxy is not None:
            proxy.stop()

    def wait_for_token(self, count: int, timeout: float = 10.0) -> str:
        """Block until ``count`` notifications were handled; the newest token."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.tokens) >= count, timeout):
                raise TimeoutError(f"{len(self.tokens)} notification(s) within {timeout} s")
            if self.errors:
                raise self.errors[0]
            return self.tokens[-1]

    # -- MQTT callbacks (paho's network thread) -----------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: Any, userdata: Any, mid: Any, codes: Any, props: Any) -> None:
        if all(not code.is_failure for code in codes):
            self.subscribed.set()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._handle(json.loads(message.payload))
        except Exception as exc:  # an agent keeps running; the test reads errors
            log.exception("bad notification on %s", message.topic)
            with self._changed:
                self.errors.append(exc)
                self._changed.notify_all()

    def _handle(self, notification: dict[str, Any]) -> None:
        if notification.get("clientMode") != "destination":
            raise ValueError(f"unexpected clientMode {notification.get('clientMode')!r}")
        token = notification["clientAccessToken"]
        mapping = {name: self.services[name] for name in notification["services"]}
        with self._lock:
            old, self.proxy = self.proxy, None
        if old is not None:
            old.stop()  # a rotated token: reconnect with the new one
        proxy = self.start_proxy(self.data_endpoint, token, mapping)
        with self._changed:
            self.proxy = proxy
            self.tokens.append(token)
            self._changed.notify_all()
