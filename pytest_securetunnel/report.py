"""Readable summaries of what a test did with the fake, with tokens masked."""

from __future__ import annotations

import json
from typing import Any

from pytest_securetunnel.service import SecureTunnelFake

_TOKEN_KEYS = ("sourceAccessToken", "destinationAccessToken", "clientAccessToken")


def mask_token(token: str) -> str:
    """Show only the first characters of an access token."""
    return token if len(token) <= 12 else f"{token[:8]}...({len(token)} chars)"


def mask(value: Any) -> Any:
    """``value`` with every access token masked."""
    if isinstance(value, dict):
        return {
            k: mask_token(v) if k in _TOKEN_KEYS and isinstance(v, str) else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def format_calls(fake: SecureTunnelFake, *, limit: int = 50) -> str:
    """The calls the fake answered, one a line: operation, parameters, outcome."""
    calls = fake.calls[-limit:]
    dropped: int = getattr(fake.calls, "dropped", 0)
    lines = [f"seed={fake.seed} (replay with --securetunnel-seed={fake.seed})"]
    earlier = len(fake.calls) - len(calls) + dropped
    if earlier:
        note = f" ({dropped} of them dropped from the call log)" if dropped else ""
        lines.append(f"... {earlier} earlier calls not shown{note}")
    if not calls:
        lines.append("no tunnel API calls were made")
    for number, record in enumerate(calls, start=earlier + 1):
        params = json.dumps(mask(record.params), sort_keys=True)
        if record.ok:
            outcome = json.dumps(mask(record.response), sort_keys=True, default=str)
            if len(outcome) > 300:
                outcome = outcome[:297] + "..."
        else:
            outcome = f"{record.error_code}: {record.error_message}"
        lines.append(f"{number:>3}. {record.operation}({params}) -> {outcome}")
    return "\n".join(lines)
