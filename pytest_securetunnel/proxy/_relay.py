"""One tunnel's relay on the proxy's loop: carries out what the relay policy decides.

The policy (:class:`~pytest_securetunnel.protocol.RelayPolicy`) validates messages,
decides where they go and which connection is closed, and why; this adapter writes the
messages, starts the closing handshakes (the one asynchronous step, handed to
``RelayOwner.spawn``), logs the events and applies backpressure. Everything runs
synchronously on the proxy's loop, as frames are parsed.
"""

from __future__ import annotations

from collections.abc import Collection, Coroutine, Iterable
from typing import Any, Final, Protocol, cast

from pytest_securetunnel.protocol import (
    CLOSED,
    DELETED,
    EXPIRED,
    INTERNAL_CLOSE,
    REVOKED,
    SERVICES_CHANGED,
    Close,
    Disconnected,
    Dropped,
    Received,
    RelayAction,
    RelayPolicy,
    Send,
    TunnelMessage,
    TunnelState,
    Violation,
)
from pytest_securetunnel.service import Mode, SecureTunnelFake, Tunnel

from ._events import EventLog
from ._peer import Peer
from ._ws_internals import transport_of

__all__ = [
    "CLOSED",
    "DELETED",
    "EXPIRED",
    "INTERNAL_CLOSE",
    "REVOKED",
    "SERVICES_CHANGED",
    "RelayOwner",
    "TunnelRelay",
    "close_reason",
]

_OTHER = {"source": "destination", "destination": "source"}
_MAX_REASON: Final = 123  # RFC 6455: a close reason is at most 123 bytes


def close_reason(text: str) -> str:
    """``text`` cut to the 123 UTF-8 bytes a close frame allows."""
    data = text.encode()
    if len(data) <= _MAX_REASON:
        return text
    return data[:_MAX_REASON].decode(errors="ignore")


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
        self.policy: RelayPolicy[Peer] = RelayPolicy()
        self.peers = self.policy.peers

    def __repr__(self) -> str:
        return f"<TunnelRelay {self.tunnel_id} peers={sorted(self.peers)}>"

    @property
    def idle(self) -> bool:
        """Whether no connection is open or opening."""
        return self.policy.idle

    # -- events in ----------------------------------------------------------------------

    def admitted(self, mode: str) -> None:
        """A handshake for ``mode`` was admitted."""
        self.policy.admitted(mode)

    def admission_dropped(self, mode: str) -> None:
        """An admitted handshake for ``mode`` never opened."""
        self.run(self.policy.admission_dropped(mode))

    def open(self, peer: Peer) -> None:
        """Start relaying for a connection whose WebSocket just opened."""
        fake = self.owner.fake
        # The tunnel may have closed, or the token been rotated, during the handshake.
        if fake.status(self.tunnel) != "OPEN":
            state = TunnelState.CLOSED if self.tunnel.closed_at is not None else TunnelState.EXPIRED
        elif not self._still_stored():
            state = TunnelState.DELETED
        else:
            state = TunnelState.OPEN
        record = fake.token(peer.access_token)
        valid = record is not None and not record.revoked
        self.run(self.policy.connected(peer, peer.conn, tunnel=state, token_valid=valid))

    def _still_stored(self) -> bool:
        """Whether the fake still holds the tunnel (not deleted, not forgotten by reset)."""
        try:
            return self.owner.fake.tunnel(self.tunnel.tunnel_id) is self.tunnel
        except KeyError:
            return False

    def detach(self, peer: Peer, code: int | None = None, reason: str | None = None) -> None:
        """Forget a connection that ended (with close ``code``/``reason``); tell the fake."""
        self.run(self.policy.disconnected(peer, code, reason))

    def close(self, peer: Peer, code: int, reason: str) -> None:
        """Take ``peer`` out of the tunnel and start closing it (the handshake is a task)."""
        self.run(self.policy.close(peer, code, reason))

    def close_all(self, reason: str) -> None:
        """Close both sides with 1000 after CloseTunnel (``CLOSED``) or expiry (``EXPIRED``)."""
        self.run(self.policy.tunnel_closed(expired=reason == EXPIRED))

    def deleted(self) -> None:
        """The tunnel was deleted: close both sides."""
        self.run(self.policy.tunnel_deleted())

    def tokens_rotated(self, valid: Collection[str]) -> None:
        """A token was rotated: close what the new tokens and services no longer allow.

        ``valid`` holds the tunnel's tokens that were valid when the fake rotated.
        """
        revoked = [peer for peer in self.peers.values() if peer.access_token not in valid]
        self.run(self.policy.tokens_rotated(self.tunnel.services, revoked))

    def send(self, peer: Peer, messages: Iterable[TunnelMessage]) -> None:
        """Send messages the service generates (injected faults) to ``peer``."""
        self.run([self.policy.send(peer, message) for message in messages])

    def on_data(self, peer: Peer, data: bytes) -> None:
        """Validate and relay one binary WebSocket message from ``peer``."""
        try:
            self.run(self.policy.receive_data(peer, data))
        except Exception as exc:  # a bug: record it, close this connection only
            self.owner.record_error(exc)
            self.run(self.policy.close(peer, 1011, INTERNAL_CLOSE, discard_input=True))
            return
        other = self.peers.get(_OTHER[peer.mode])
        if other is not None and other.paused:
            # Backpressure: stop reading this client until the peer drains.
            transport = transport_of(peer.ws)
            transport.pause_reading()
            other.when_writable(transport.resume_reading)

    def on_text(self, peer: Peer) -> None:
        """A text message from ``peer``: close it (1003); nothing more is processed."""
        self.run(self.policy.receive_text(peer))

    # -- actions out --------------------------------------------------------------------

    def run(self, actions: list[RelayAction[Peer]]) -> None:
        """Carry out the policy's actions, in order."""
        events = self.owner.events
        for action in actions:
            # The common actions first: each relayed message is a Received and a Send.
            if isinstance(action, Received):
                peer = action.peer
                events.record_message(
                    "received", self.tunnel_id, peer.mode, peer.channel_id, action.message
                )
            elif isinstance(action, Send):
                action.peer.send(action.message, action.frame)
            elif isinstance(action, Dropped):
                events.record(
                    "dropped",
                    tunnel_id=self.tunnel_id,
                    mode=action.mode,
                    message=action.message,
                    reason=action.reason,
                )
            elif isinstance(action, Close):
                if action.discard_input:
                    action.peer.ws.sink = _ignore
                self.owner.spawn(self.owner.close(action.peer, action.code, action.reason))
            elif isinstance(action, Violation):
                peer = action.peer
                events.record(
                    "violation",
                    tunnel_id=self.tunnel_id,
                    mode=peer.mode,
                    channel_id=peer.channel_id,
                    code=1002,
                    reason=action.error.rule,
                    error=action.error,
                )
            elif isinstance(action, Disconnected):
                # Reported as the close frame will carry it (a closing connection's code
                # and reason come with the Disconnected that precedes its Close).
                reason = action.reason
                self.owner.fake.connection_closed(
                    self.tunnel,
                    cast("Mode", action.mode),
                    action.code,
                    None if reason is None else close_reason(reason),
                )
