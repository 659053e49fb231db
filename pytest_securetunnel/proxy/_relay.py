"""One tunnel's relay: its source and destination connections and what passes between.

Everything here is synchronous and runs on the proxy's loop: messages are validated by
the protocol core and written to the peer as they are parsed. Closing a connection (a
closing handshake) is the one asynchronous step; it is handed to ``RelayOwner.spawn``.
"""

from __future__ import annotations

import collections
from collections.abc import Coroutine
from typing import Any, Final, Protocol, cast

from pytest_securetunnel.protocol import (
    LENGTH_PREFIX_SIZE,
    ProtocolError,
    TunnelMessage,
    decode_message,
    validate_message,
)
from pytest_securetunnel.service import Mode, SecureTunnelFake, Tunnel

from ._events import EventLog
from ._peer import Peer

__all__ = [
    "CLOSED",
    "DELETED",
    "EXPIRED",
    "INTERNAL_CLOSE",
    "REVOKED",
    "RelayOwner",
    "TunnelRelay",
]

OTHER: Final = {"source": "destination", "destination": "source"}
CLOSED: Final = "Tunnel closed by CloseTunnel"
EXPIRED: Final = "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed"
REVOKED: Final = "Access token revoked by RotateTunnelAccessToken"
DELETED: Final = "Tunnel deleted"
INTERNAL_CLOSE: Final = "Internal error in pytest-securetunnel's proxy"


class RelayOwner(Protocol):
    """What a relay needs from the proxy that owns it."""

    fake: SecureTunnelFake
    events: EventLog

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a tracked task."""

    def record_error(self, error: BaseException) -> None:
        """Record an unexpected error (a bug) for ``TunnelProxy.check()``."""

    async def close(self, peer: Peer, code: int, reason: str) -> None:
        """Close ``peer``'s WebSocket with ``code`` and ``reason``."""


def _ignore(data: bytes) -> None:
    """The sink of a connection that broke a rule: nothing more is processed."""


class TunnelRelay:
    """The live connections of one tunnel, and handshakes admitted but not yet open."""

    def __init__(self, tunnel: Tunnel, owner: RelayOwner) -> None:
        """Relay for ``tunnel``; ``owner`` closes connections and logs events."""
        self.tunnel = tunnel
        self.tunnel_id = tunnel.tunnel_id
        self.owner = owner
        self.peers: dict[str, Peer] = {}
        self.pending: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        return f"<TunnelRelay {self.tunnel_id} peers={sorted(self.peers)}>"

    @property
    def idle(self) -> bool:
        """Whether no connection is open or opening."""
        return not self.peers and not +self.pending

    def close(self, peer: Peer, code: int, reason: str) -> None:
        """Take ``peer`` out of the tunnel and start closing it (the handshake is a task).

        Its later traffic is not relayed, and a new connection on its side is not a
        replacement (no STREAM_RESET for the peer: a disconnect is silent).
        """
        if self.peers.get(peer.mode) is peer:
            del self.peers[peer.mode]
        self.owner.spawn(self.owner.close(peer, code, reason))

    def _still_stored(self) -> bool:
        """Whether the fake still holds the tunnel (not deleted, not forgotten by reset)."""
        try:
            return self.owner.fake.tunnel(self.tunnel.tunnel_id) is self.tunnel
        except KeyError:
            return False

    def closed_reason(self) -> str | None:
        """Why the tunnel is CLOSED by the fake's clock, or ``None`` while it is OPEN."""
        if self.owner.fake.status(self.tunnel) == "OPEN":
            return None
        return CLOSED if self.tunnel.closed_at is not None else EXPIRED

    # -- connections come and go ------------------------------------------------------

    def open(self, peer: Peer) -> None:
        """Start relaying for a connection whose WebSocket just opened."""
        self.pending[peer.mode] -= 1
        first = peer.conn.service_ids_message()
        if first is not None:
            # V2/V3 guides, 'Step 1'; localproxy: SERVICE_IDS must be the first message.
            peer.send(first)
        old = self.peers.get(peer.mode)
        if old is not None:
            # docs/fidelity.md: a new connection replaces the old one, closed with 1008;
            # the peer receives STREAM_RESET for its active streams.
            self.close(old, 1008, f"Replaced by a new {peer.mode} connection")
            self._reset_streams(self.peers.get(OTHER[peer.mode]))
        self.peers[peer.mode] = peer
        # The tunnel may have closed, or the token been rotated, during the handshake.
        closed = self.closed_reason()
        record = self.owner.fake.token(peer.access_token)
        if closed is not None:
            self.close(peer, 1000, closed)
        elif not self._still_stored():
            self.close(peer, 1000, DELETED)
        elif record is None or record.revoked:
            self.close(peer, 1008, REVOKED)

    def detach(self, peer: Peer, code: int | None = None, reason: str | None = None) -> None:
        """Forget a connection that ended (with close ``code``/``reason``); tell the fake."""
        if self.peers.get(peer.mode) is peer:
            del self.peers[peer.mode]
        self.release(peer.mode, code, reason)

    def release(self, mode: str, code: int | None = None, reason: str | None = None) -> None:
        """Tell the fake ``mode`` is disconnected unless a connection still holds it."""
        if mode not in self.peers and self.pending[mode] <= 0:
            self.owner.fake.connection_closed(self.tunnel, cast("Mode", mode), code, reason)

    def _reset_streams(self, peer: Peer | None) -> None:
        if peer is not None:
            for message in peer.conn.stream_reset_messages():
                peer.send(message)

    # -- messages ---------------------------------------------------------------------

    def on_data(self, peer: Peer, data: bytes) -> None:
        """Validate and relay one binary WebSocket message from ``peer``."""
        conn = peer.conn
        if peer.failed:
            return  # it broke a rule: nothing more is processed
        try:
            size = len(data)
            if size >= 2 and (data[0] << 8 | data[1]) == size - 2 and not conn.buffered:
                # The usual case, one whole frame: TunnelConnection.receive_data's steps
                # without its buffer, and the frame is forwarded unchanged. The body is a
                # view, not a 64 KB copy.
                message = decode_message(memoryview(data)[LENGTH_PREFIX_SIZE:])
                validate_message(message, conn.context)
                conn.streams.apply(message, from_client=True)
                self._forward(peer, message, data)
            else:
                for message, frame in conn.receive_frames(data):
                    self._forward(peer, message, frame)
        except ProtocolError as exc:
            for message, frame in zip(exc.accepted, exc.accepted_frames, strict=True):
                self._forward(peer, message, frame)
            self._violation(peer, exc)
            return
        except Exception as exc:  # a bug: record it, close this connection only
            peer.ws.sink = _ignore
            self.owner.record_error(exc)
            self.close(peer, 1011, INTERNAL_CLOSE)
            return
        other = self.peers.get(OTHER[peer.mode])
        if other is not None and other.paused:
            # Backpressure: stop reading this client until the peer drains.
            transport = peer.ws.transport
            transport.pause_reading()
            other.when_writable(transport.resume_reading)

    def on_text(self, peer: Peer) -> None:
        """A text message from ``peer``: close it (1003); nothing more is processed."""
        if peer.failed:
            return
        peer.failed = True
        peer.ws.sink = _ignore
        self.close(peer, 1003, "Text frames are not supported: use binary")

    def _forward(self, peer: Peer, message: TunnelMessage, frame: bytes | None) -> None:
        events = self.owner.events
        events.record_message("received", self.tunnel_id, peer.mode, peer.channel_id, message)
        if self.peers.get(peer.mode) is not peer:
            return  # replaced: its traffic no longer reaches the tunnel
        other = self.peers.get(OTHER[peer.mode])
        if other is not None:
            other.send(message, frame)
        else:
            # docs/fidelity.md: no buffer for a side that is not connected.
            other_mode = OTHER[peer.mode]
            events.record(
                "dropped",
                tunnel_id=self.tunnel_id,
                mode=other_mode,
                message=message,
                reason=f"{other_mode} not connected",
            )

    def _violation(self, peer: Peer, exc: ProtocolError) -> None:
        peer.failed = True
        peer.ws.sink = _ignore
        self.owner.events.record(
            "violation",
            tunnel_id=self.tunnel_id,
            mode=peer.mode,
            channel_id=peer.channel_id,
            code=1002,
            reason=exc.rule,
            error=exc,
        )
        # docs/fidelity.md: only the offender is closed (1002, naming the rule); its peer
        # receives STREAM_RESET for the affected streams.
        if self.peers.get(peer.mode) is peer:
            self._reset_streams(self.peers.get(OTHER[peer.mode]))
        self.close(peer, 1002, f"{exc.rule}: {exc.detail}")
