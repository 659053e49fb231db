"""A remote-access session that notices when its tunnel expires and says so."""

from __future__ import annotations

from typing import Any


class RemoteSession:
    """Holds one tunnel to a device for an operator; knows when it has ended."""

    def __init__(self, client: Any, device: str, *, minutes: int = 30) -> None:
        self.client = client
        opened = client.open_tunnel(
            destinationConfig={"thingName": device, "services": ["SSH"]},
            timeoutConfig={"maxLifetimeTimeoutMinutes": minutes},
        )
        self.tunnel_id: str = opened["tunnelId"]
        self.source_token: str = opened["sourceAccessToken"]

    def status(self) -> str:
        """``active``, or ``expired`` once AWS has closed the tunnel."""
        tunnel = self.client.describe_tunnel(tunnelId=self.tunnel_id)["tunnel"]
        return "active" if tunnel["status"] == "OPEN" else "expired"

    def renew_token(self) -> str:
        """A fresh source token for reconnecting; fails once the session has expired."""
        if self.status() == "expired":
            raise RuntimeError(f"session {self.tunnel_id} has expired; open a new one")
        rotated = self.client.rotate_tunnel_access_token(
            tunnelId=self.tunnel_id, clientMode="SOURCE"
        )
        self.source_token = rotated["sourceAccessToken"]
        return self.source_token
