"""A device agent: on a tunnel notification, start a destination local proxy.

Real agents receive the notification over MQTT on ``$aws/things/THING/tunnels/notify``;
``on_notification`` is what their MQTT callback calls with the message body.
"""

from __future__ import annotations

import json
from typing import Any

from pytest_securetunnel import SyncLocalProxy

#: Where each tunnel service is served on the device.
PORTS = {"SSH": 22, "HTTP": 8080}


class DeviceAgent:
    """Connects the device's local services to tunnels opened for it."""

    def __init__(self, endpoint: str, *, ports: dict[str, int] | None = None, ssl: Any = None):
        self.endpoint = endpoint
        self.ports = ports or PORTS
        self.ssl = ssl
        self.proxies: list[SyncLocalProxy] = []

    def on_notification(self, topic: str, body: bytes) -> None:
        """Handle one MQTT message from ``$aws/things/THING/tunnels/notify``."""
        message = json.loads(body)
        if message.get("clientMode") != "destination":
            raise ValueError(f"unexpected clientMode in {topic}: {message.get('clientMode')!r}")
        mapping = {s: f"127.0.0.1:{self.ports[s]}" for s in message["services"]}
        proxy = SyncLocalProxy(
            self.endpoint, message["clientAccessToken"], "destination", mapping, ssl=self.ssl
        )
        self.proxies.append(proxy.start())

    def stop(self) -> None:
        """Stop every local proxy the agent started."""
        for proxy in self.proxies:
            proxy.stop()
        self.proxies.clear()
