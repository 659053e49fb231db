"""Fault injection on live connections, for users' robustness tests (on the proxy's loop)."""

from __future__ import annotations

import math
from collections.abc import Callable

from pytest_securetunnel.protocol import TunnelMessage

from ._events import EventLog
from ._peer import Delivery, Peer
from ._relay import TunnelRelay
from ._ws_internals import transport_of

__all__ = ["Faults"]


class Faults:
    """Drops, injected resets and delivery shaping, per tunnel or per side of a tunnel."""

    def __init__(self, relays: dict[str, TunnelRelay], events: EventLog, default: Delivery) -> None:
        """Act on ``relays`` (the proxy's live tunnels), logging to ``events``."""
        self._relays = relays
        self._events = events
        self._default = default
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._close_delays: dict[str | None, float] = {}

    def delivery_for(self, tunnel_id: str, mode: str) -> Delivery:
        """The delivery for a side: set for that side, else for the tunnel, else default."""
        deliveries = self._deliveries
        return deliveries.get((tunnel_id, mode), deliveries.get((tunnel_id, ""), self._default))

    def set_delivery(self, tunnel_id: str, mode: str | None, delivery: Delivery | None) -> None:
        """Shape delivery to one side of a tunnel (``mode``) or to both (``None``)."""
        if mode is None:
            self._deliveries.pop((tunnel_id, "source"), None)
            self._deliveries.pop((tunnel_id, "destination"), None)
        key = (tunnel_id, mode or "")
        if delivery is None:
            self._deliveries.pop(key, None)
        else:
            self._deliveries[key] = delivery
        relay = self._relays.get(tunnel_id)
        for peer in [] if relay is None else relay.peers.values():
            peer.delivery = self.delivery_for(tunnel_id, peer.mode)

    def peers(self, tunnel_id: str, mode: str | None) -> list[Peer]:
        """The live connections of a tunnel (one side, or both if ``mode`` is None)."""
        relay = self._relays.get(tunnel_id)
        modes = ("source", "destination") if mode is None else (mode,)
        found = [] if relay is None else [relay.peers[m] for m in modes if m in relay.peers]
        if not found:
            side = "no connection" if mode is None else f"no {mode} connection"
            raise LookupError(f"{side} is open on tunnel {tunnel_id}")
        return found

    def _log(self, peer: Peer, name: str) -> None:
        self._events.record(
            "fault",
            tunnel_id=peer.tunnel_id,
            mode=peer.mode,
            channel_id=peer.channel_id,
            reason=name,
        )

    def drop(self, tunnel_id: str, mode: str | None) -> int:
        """Drop connections without a close frame (TCP abort); return how many."""
        found = self.peers(tunnel_id, mode)
        for peer in found:
            self._log(peer, "drop")
            peer.closing = True
            transport_of(peer.ws).abort()
        return len(found)

    def inject(
        self,
        tunnel_id: str,
        mode: str | None,
        name: str,
        build: Callable[[Peer], list[TunnelMessage]],
    ) -> int:
        """Send the messages ``build(peer)`` makes to each selected connection."""
        found = self.peers(tunnel_id, mode)
        relay = self._relays[tunnel_id]
        for peer in found:
            self._log(peer, name)
            relay.send(peer, build(peer))
        return len(found)

    # -- late closing after CloseTunnel or expiry ----------------------------------

    def set_close_delay(self, tunnel_id: str | None, seconds: float | None) -> None:
        """Close a tunnel's connections ``seconds`` after it becomes CLOSED (``None``: at once).

        For one tunnel, or for every tunnel without its own setting (``tunnel_id=None``).
        """
        if seconds is None:
            self._close_delays.pop(tunnel_id, None)
            return
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"close delay must be a number of seconds; got {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(
                f"close delay must be a finite number of seconds >= 0; got {seconds!r}"
            )
        self._close_delays[tunnel_id] = float(seconds)

    def close_delay_for(self, tunnel_id: str) -> float:
        """Seconds to wait before closing ``tunnel_id``'s connections once it is CLOSED."""
        delays = self._close_delays
        return delays.get(tunnel_id, delays.get(None, 0.0))

    def note_close_delay(self, tunnel_id: str, delay: float) -> None:
        """Log that the live connections of ``tunnel_id`` will be closed ``delay`` s late."""
        relay = self._relays.get(tunnel_id)
        for peer in [] if relay is None else list(relay.peers.values()):
            self._log(peer, f"close-delay {delay:g}s")
