"""The names of the ``mqtt`` extra, imported on first use with a clear error without it."""

from __future__ import annotations

import importlib
from typing import Any

LAZY = {
    "DeviceCertificate": "pytest_securetunnel.mqtt._certs",
    "MqttBrokerError": "pytest_securetunnel.mqtt._broker",
    "NotifyBroker": "pytest_securetunnel.mqtt._broker",
}


def load(name: str) -> Any:
    """``pytest_securetunnel.mqtt.NAME``, imported now; ``ImportError`` names the extra."""
    module_name = LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_securetunnel.mqtt' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"pytest_securetunnel.mqtt.{name} needs the mqtt extra (trustme, paho-mqtt): "
            f"pip install 'pytest-securetunnel[mqtt]' ({exc})"
        ) from exc
    return getattr(module, name)
