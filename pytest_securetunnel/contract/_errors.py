"""Errors of contract mode."""

from __future__ import annotations

from pytest_securetunnel._errors import SecureTunnelError


class LiveModeError(SecureTunnelError, RuntimeError):
    """Contract mode refused something unsafe or unsupported (it names the rule and the fix)."""
