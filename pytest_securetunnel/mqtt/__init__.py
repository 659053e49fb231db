"""The device side of the notify path: an MQTT broker for the fake, device certificates.

``NotifyBroker(fake)`` publishes the fake's tunnel notifications on
``$aws/things/THING/tunnels/notify`` (QoS 1, not retained) to devices connected over
MQTT 3.1.1 or 5, with mutual TLS or plain TCP. Needs the ``mqtt`` extra
(``pip install 'pytest-securetunnel[mqtt]'``).
"""

from __future__ import annotations

from ._broker import MqttBrokerError, NotifyBroker
from ._certs import DeviceCertificate

__all__ = ["DeviceCertificate", "MqttBrokerError", "NotifyBroker"]
