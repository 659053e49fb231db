"""The device side of the notify path: an MQTT broker for the fake, device certificates.

``NotifyBroker(fake)`` publishes the fake's tunnel notifications on
``$aws/things/THING/tunnels/notify`` (QoS 1, not retained) to devices connected over
MQTT 3.1.1 or 5, with mutual TLS or plain TCP. It needs the ``mqtt`` extra
(``pip install 'pytest-securetunnel[mqtt]'``) and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import load
from ._serve import add_mqtt_arguments, mqtt_info, start_mqtt

if TYPE_CHECKING:
    from ._broker import MqttBrokerError, NotifyBroker
    from ._certs import DeviceCertificate

__all__ = [
    "DeviceCertificate",
    "MqttBrokerError",
    "NotifyBroker",
    "add_mqtt_arguments",
    "mqtt_info",
    "start_mqtt",
]


def __getattr__(name: str) -> Any:
    return load(name)


def __dir__() -> list[str]:
    return sorted(__all__)
