"""The control plane as plain state: tunnels, tokens, tags, quotas, validation, clock.

Knows nothing of HTTP, botocore's event system or asyncio; adapters call
:meth:`SecureTunnelFake.handle` with the AWS JSON 1.1 wire shape. :mod:`model` is the
botocore service model the fake validates with (for adapters and strategies);
:func:`register_display` and :func:`register_to_thread` are where adapters plug in
display and async waiting.
"""

from pytest_securetunnel.service import _model as model
from pytest_securetunnel.service._adapters import register_display, register_to_thread
from pytest_securetunnel.service._clock import Clock
from pytest_securetunnel.service._errors import (
    FakeInternalError,
    Refusal,
    ServiceError,
    UnknownRegionError,
)
from pytest_securetunnel.service._fake import SecureTunnelFake
from pytest_securetunnel.service._model import SERVICE_NAME
from pytest_securetunnel.service._notifications import (
    Notification,
    Notifications,
    SubscriberError,
)
from pytest_securetunnel.service._operations import Quotas
from pytest_securetunnel.service._state import (
    ConnectionState,
    DataPlaneEvent,
    Mode,
    TokenRecord,
    Tunnel,
)
from pytest_securetunnel.service._wire import FRESH_ANSWERS, CallRecord, WireResponse

__all__ = [
    "FRESH_ANSWERS",
    "SERVICE_NAME",
    "CallRecord",
    "Clock",
    "ConnectionState",
    "DataPlaneEvent",
    "FakeInternalError",
    "Mode",
    "Notification",
    "Notifications",
    "Quotas",
    "Refusal",
    "SecureTunnelFake",
    "ServiceError",
    "SubscriberError",
    "TokenRecord",
    "Tunnel",
    "UnknownRegionError",
    "WireResponse",
    "model",
    "register_display",
    "register_to_thread",
]
