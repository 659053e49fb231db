"""A small fleet service: opens tunnels to devices, hands out tokens, cleans up.

This is the kind of code our users write; its tests are in test_fleet.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Session:
    tunnel_id: str
    source_token: str


class FleetService:
    """Opens remote-access sessions to devices through AWS IoT Secure Tunneling."""

    def __init__(self, client: Any, *, lifetime_minutes: int = 60) -> None:
        self.client = client
        self.lifetime_minutes = lifetime_minutes

    def start_session(self, device: str, service: str = "SSH") -> Session:
        """Open a tunnel to ``device``, reusing an open one if the device has it."""
        for summary in self.client.list_tunnels(thingName=device)["tunnelSummaries"]:
            if summary["status"] == "OPEN":
                # A tunnel's tokens are single-use: issue a fresh source token.
                rotated = self.client.rotate_tunnel_access_token(
                    tunnelId=summary["tunnelId"], clientMode="SOURCE"
                )
                return Session(summary["tunnelId"], rotated["sourceAccessToken"])
        opened = self.client.open_tunnel(
            description=f"remote access to {device}",
            destinationConfig={"thingName": device, "services": [service]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": self.lifetime_minutes},
            tags=[{"key": "owner", "value": "fleet-service"}],
        )
        return Session(opened["tunnelId"], opened["sourceAccessToken"])

    def end_sessions(self, device: str) -> int:
        """Close every open tunnel to ``device``; return how many were closed."""
        closed = 0
        kwargs: dict[str, Any] = {"thingName": device}
        while True:
            page = self.client.list_tunnels(**kwargs)
            for summary in page["tunnelSummaries"]:
                if summary["status"] == "OPEN":
                    self.client.close_tunnel(tunnelId=summary["tunnelId"])
                    closed += 1
            if "nextToken" not in page:
                return closed
            kwargs["nextToken"] = page["nextToken"]
