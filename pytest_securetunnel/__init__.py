"""pytest-securetunnel: test code that uses AWS IoT Secure Tunneling, with no AWS account.

The public names live here; everything else is private.
"""

from pytest_securetunnel.mock import Attachment, MockSecureTunneling, attach, mock_securetunneling
from pytest_securetunnel.service import (
    CallRecord,
    Clock,
    FakeInternalError,
    Notification,
    Quotas,
    SecureTunnelFake,
    Tunnel,
)
from pytest_securetunnel.stubber import SecureTunnelStubber

__all__ = [
    "Attachment",
    "CallRecord",
    "Clock",
    "FakeInternalError",
    "MockSecureTunneling",
    "Notification",
    "Quotas",
    "SecureTunnelFake",
    "SecureTunnelStubber",
    "Tunnel",
    "attach",
    "mock_securetunneling",
]

__version__ = "0.1.0"
