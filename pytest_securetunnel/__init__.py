"""pytest-securetunnel: test code that uses AWS IoT Secure Tunneling, with no AWS account.

The public names live here; everything else is private. The data-plane names
(:class:`TunnelProxy`, the tunnel clients and :class:`LocalProxy`) need the
``dataplane`` extra and are imported on first use.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any

from pytest_securetunnel import jupyter as _jupyter  # noqa: F401  (the fake's text and HTML views)
from pytest_securetunnel._errors import SecureTunnelError
from pytest_securetunnel.mock import (
    Attachment,
    MockSecureTunneling,
    RealCallBlocked,
    attach,
    guard_real_calls,
    mock_securetunneling,
)
from pytest_securetunnel.server import SecureTunnelServer
from pytest_securetunnel.service import (
    CallRecord,
    Clock,
    FakeInternalError,
    Notification,
    Quotas,
    SecureTunnelFake,
    SubscriberError,
    Tunnel,
    UnknownRegionError,
    register_to_thread,
)
from pytest_securetunnel.stubber import SecureTunnelStubber

register_to_thread(asyncio.to_thread)  # for Notifications.wait_async

if TYPE_CHECKING:
    from pytest_securetunnel.client import (
        EchoPeer,
        HandshakeRefused,
        LocalProxy,
        ReferenceLocalProxy,
        SyncEchoPeer,
        SyncLocalProxy,
        SyncTunnelClient,
        TunnelClient,
        TunnelClosedError,
    )
    from pytest_securetunnel.proxy import Delivery, TunnelProxy, TunnelProxyError

_DATA_PLANE = {
    "Delivery": "pytest_securetunnel.proxy",
    "TunnelProxy": "pytest_securetunnel.proxy",
    "TunnelProxyError": "pytest_securetunnel.proxy",
    "EchoPeer": "pytest_securetunnel.client",
    "HandshakeRefused": "pytest_securetunnel.client",
    "LocalProxy": "pytest_securetunnel.client",
    "ReferenceLocalProxy": "pytest_securetunnel.client",
    "SyncEchoPeer": "pytest_securetunnel.client",
    "SyncLocalProxy": "pytest_securetunnel.client",
    "SyncTunnelClient": "pytest_securetunnel.client",
    "TunnelClient": "pytest_securetunnel.client",
    "TunnelClosedError": "pytest_securetunnel.client",
}

__all__ = [
    "Attachment",
    "CallRecord",
    "Clock",
    "Delivery",
    "EchoPeer",
    "FakeInternalError",
    "HandshakeRefused",
    "LocalProxy",
    "MockSecureTunneling",
    "Notification",
    "Quotas",
    "RealCallBlocked",
    "ReferenceLocalProxy",
    "SecureTunnelError",
    "SecureTunnelFake",
    "SecureTunnelServer",
    "SecureTunnelStubber",
    "SubscriberError",
    "SyncEchoPeer",
    "SyncLocalProxy",
    "SyncTunnelClient",
    "Tunnel",
    "TunnelClient",
    "TunnelClosedError",
    "TunnelProxy",
    "TunnelProxyError",
    "UnknownRegionError",
    "attach",
    "guard_real_calls",
    "mock_securetunneling",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module_name = _DATA_PLANE.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pytest_securetunnel' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(
            f"pytest_securetunnel.{name} needs the data-plane extra (websockets, protobuf, "
            f"trustme): pip install 'pytest-securetunnel[dataplane]' ({exc})"
        ) from exc
    return getattr(module, name)


def __dir__() -> list[str]:
    return sorted(__all__)
