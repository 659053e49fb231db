"""Errors of contract mode."""

from __future__ import annotations


class LiveModeError(RuntimeError):
    """Contract mode refused something unsafe or unsupported (it names the rule and the fix)."""
