"""Readable summaries of what a test did with the fake, with tokens masked."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pytest_securetunnel.service import SecureTunnelFake

#: The side each token-carrying field belongs to (a notification's ``clientAccessToken``
#: is the destination's token).
_TOKEN_SIDES = {
    "sourceAccessToken": "source",
    "destinationAccessToken": "destination",
    "clientAccessToken": "destination",
}
_STRING_LIMIT = 100
_LIST_LIMIT = 10


def mask_token(token: str, side: str | None = None) -> str:
    """An access token as ``SIDE-token#FINGERPRINT``: distinct tokens look distinct.

    The fingerprint is the first 8 hex digits of the token's SHA-256: stable across runs
    with the same seed, enough to tell a token from its rotation, useless to connect with.
    ``side`` is ``"source"`` or ``"destination"`` when known.
    """
    fingerprint = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{side or 'access'}-token#{fingerprint}"


def mask(value: Any) -> Any:
    """``value`` with every access token masked (see :func:`mask_token`)."""
    if isinstance(value, dict):
        return {
            k: mask_token(v, _TOKEN_SIDES[k])
            if k in _TOKEN_SIDES and isinstance(v, str)
            else mask(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def shorten(value: Any) -> Any:
    """``value`` with long strings and lists cut, keys and structure kept whole.

    A string over 100 characters keeps its start and says how long it was; a list over 10
    items keeps the first 10 and says how many more there were.
    """
    if isinstance(value, dict):
        return {k: shorten(v) for k, v in value.items()}
    if isinstance(value, list):
        kept = [shorten(v) for v in value[:_LIST_LIMIT]]
        if len(value) > _LIST_LIMIT:
            kept.append(f"... {len(value) - _LIST_LIMIT} more")
        return kept
    if isinstance(value, str) and len(value) > _STRING_LIMIT:
        return f"{value[: _STRING_LIMIT - 40]}...({len(value)} chars)"
    return value


def summary(value: Any) -> str:
    """``value`` as one line of JSON, tokens masked and long values shortened."""
    return json.dumps(shorten(mask(value)), sort_keys=True, default=str, ensure_ascii=False)


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
        if record.ok:
            outcome = summary(record.response)
        else:
            outcome = f"{record.error_code}: {record.error_message}"
        lines.append(f"{number:>3}. {record.operation}({summary(record.params)}) -> {outcome}")
    return "\n".join(lines)
