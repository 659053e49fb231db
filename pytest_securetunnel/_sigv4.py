"""Reading a SigV4 ``Authorization`` header: which access key and region signed it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def sigv4_scope(headers: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(access key ID, region) from a SigV4 ``Authorization`` header, or ``(None, None)``.

    The credential scope is ``AKID/DATE/REGION/SERVICE/aws4_request``.
    """
    auth = headers.get("Authorization") or headers.get("authorization")
    if isinstance(auth, bytes):
        auth = auth.decode("latin-1")
    if not auth or "Credential=" not in auth:
        return None, None
    scope = auth.split("Credential=", 1)[1].split(",", 1)[0].strip().split("/")
    return scope[0] or None, (scope[2] if len(scope) > 2 and scope[2] else None)
