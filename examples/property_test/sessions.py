"""The user's code under test: a session manager that reuses a device's open tunnel."""

from __future__ import annotations

from typing import Any


def start_session(client: Any, device: str) -> str:
    """Return an OPEN tunnel to ``device``, opening one only if none is open."""
    for summary in client.list_tunnels(thingName=device)["tunnelSummaries"]:
        if summary["status"] == "OPEN":
            return str(summary["tunnelId"])
    opened = client.open_tunnel(destinationConfig={"thingName": device, "services": ["SSH"]})
    return str(opened["tunnelId"])
