"""The tunneling service's relay policy for one tunnel, as a sans-I/O state machine.

:class:`RelayPolicy` decides what happens between a tunnel's source and destination
connections: it takes events (a connection opened, bytes arrived from one side, a side
disconnected, the tunnel was closed, expired, deleted or its tokens rotated) and returns
actions (send this message to that connection, close that connection with a code and a
reason, record this event, tell the service a side is disconnected). It knows nothing
of sockets: the caller carries out the actions, in order.

Connections are named by opaque keys the caller chooses (any hashable object, such as
its own connection wrapper); actions name the same keys.

The usual WebSocket message holds exactly one tunneling frame: :meth:`receive_data`
then decodes it without buffering and forwards the frame unchanged (the whole-frame
fast path); anything else goes through the connection's frame decoder.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
from collections.abc import Collection, Hashable, Iterable
from typing import Final, Generic, TypeVar

from ._connection import TunnelConnection
from ._errors import ProtocolError
from ._framing import LENGTH_PREFIX_SIZE
from ._messages import TunnelMessage, decode_message
from ._rules import validate_message
from ._streams import StreamTable

__all__ = [
    "CLOSED",
    "DELETED",
    "EXPIRED",
    "INTERNAL_CLOSE",
    "REVOKED",
    "SERVICES_CHANGED",
    "Close",
    "Disconnected",
    "Dropped",
    "Received",
    "RelayAction",
    "RelayPolicy",
    "Send",
    "TunnelState",
    "Violation",
]

K = TypeVar("K", bound=Hashable)

#: Close reasons (sent with code 1000 or 1008, see :class:`RelayPolicy`).
CLOSED: Final = "Tunnel closed by CloseTunnel"
EXPIRED: Final = "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed"
REVOKED: Final = "Access token revoked by RotateTunnelAccessToken"
DELETED: Final = "Tunnel deleted"
INTERNAL_CLOSE: Final = "Internal error in pytest-securetunnel's proxy"
#: Why a live connection announced other services than the tunnel's is closed (1008).
SERVICES_CHANGED: Final = (
    "Tunnel services changed by RotateTunnelAccessToken: reconnect to receive the new SERVICE_IDS"
)
_OTHER: Final = {"source": "destination", "destination": "source"}


class TunnelState(enum.Enum):
    """What the service says of the tunnel when a connection opens."""

    OPEN = "open"
    CLOSED = "closed"  # by CloseTunnel
    EXPIRED = "expired"  # its maximum lifetime elapsed
    DELETED = "deleted"  # no longer stored


# -- actions --------------------------------------------------------------------------
# Plain (not frozen) slotted dataclasses: two are made for every relayed message, and
# a frozen one costs three times as much to build. Treat them as read-only.


@dataclasses.dataclass(slots=True)
class Send(Generic[K]):
    """Write ``message`` to connection ``peer``; ``frame`` is its encoding as received
    (forward it unchanged), or ``None`` for a message the service generates.
    """

    peer: K
    message: TunnelMessage
    frame: bytes | None = None


@dataclasses.dataclass(slots=True)
class Close(Generic[K]):
    """Close connection ``peer`` with ``code`` and ``reason``.

    With ``discard_input``, nothing more it sends needs to reach the relay (it broke a
    rule, or the relay failed on it): the caller may stop handing its data over.
    """

    peer: K
    code: int
    reason: str
    discard_input: bool = False


@dataclasses.dataclass(slots=True)
class Received(Generic[K]):
    """Record that ``peer`` sent ``message`` and it was valid."""

    peer: K
    message: TunnelMessage


@dataclasses.dataclass(slots=True)
class Dropped:
    """Record that ``message`` for the ``mode`` side was dropped, and why."""

    mode: str
    message: TunnelMessage
    reason: str


@dataclasses.dataclass(slots=True)
class Violation(Generic[K]):
    """Record that ``peer`` broke a protocol rule (a :class:`Close` with 1002 follows)."""

    peer: K
    error: ProtocolError


@dataclasses.dataclass(slots=True)
class Disconnected:
    """Tell the service that no connection holds the ``mode`` side any more (the last
    one ended with close ``code`` and ``reason``, where known).
    """

    mode: str
    code: int | None = None
    reason: str | None = None


#: What :class:`RelayPolicy` asks its caller to do.
RelayAction = Send[K] | Close[K] | Received[K] | Dropped | Violation[K] | Disconnected


@dataclasses.dataclass(eq=False, slots=True)
class _Endpoint(Generic[K]):
    peer: K
    mode: str
    conn: TunnelConnection
    streams: StreamTable
    failed: bool = False
    #: Its side's disconnect was reported when the relay closed it (not again at its end).
    reported: bool = False


class RelayPolicy(Generic[K]):
    """The relay of one tunnel: its live source and destination connections.

    The rules it applies (docs/fidelity.md describes them for users):

    - SERVICE_IDS is the first message a V2/V3 connection gets.
    - A new connection on a side replaces the live one, which is closed with 1008; the
      other side gets STREAM_RESET for its active streams. So does a side's reconnect
      after its connection ended (the end itself is not announced).
    - A connection opened on a tunnel that was closed (1000), deleted (1000) or whose
      token was revoked (1008) meanwhile is closed at once.
    - Valid messages go to the other side unchanged; with no connection there they are
      dropped (no buffering). A replaced connection's traffic no longer reaches it.
    - A rule violation closes only the offender (1002, naming the rule), and the other
      side gets STREAM_RESET for its active streams; a text message closes with 1003.
    - CloseTunnel and expiry close both sides with 1000; rotating a token closes the
      connections of the revoked tokens, and those announced another service list,
      with 1008.
    - A side is reported disconnected (:class:`Disconnected`) once nothing holds it: as
      the relay closes its connection (before the :class:`Close`), or when a connection
      it did not close ends.
    """

    def __init__(self) -> None:
        """A relay with no connection."""
        self._endpoints: dict[K, _Endpoint[K]] = {}
        self._live: dict[str, K] = {}
        self._pending: collections.Counter[str] = collections.Counter()
        self._ever_connected: set[str] = set()

    def __repr__(self) -> str:
        return f"<RelayPolicy live={sorted(self._live)} pending={dict(+self._pending)}>"

    # -- state ------------------------------------------------------------------------

    @property
    def peers(self) -> dict[str, K]:
        """Mode -> the live connection of that side (do not modify)."""
        return self._live

    @property
    def idle(self) -> bool:
        """Whether no connection is open or opening."""
        return not self._live and not +self._pending

    def connection(self, peer: K) -> TunnelConnection:
        """The protocol state of connection ``peer``."""
        return self._endpoints[peer].conn

    # -- connections come and go --------------------------------------------------------

    def admitted(self, mode: str) -> None:
        """A handshake for ``mode`` was admitted; its WebSocket is not open yet."""
        self._pending[mode] += 1

    def admission_dropped(self, mode: str) -> list[RelayAction[K]]:
        """An admitted handshake for ``mode`` never opened."""
        self._pending[mode] -= 1
        return self._release(mode)

    def connected(
        self,
        peer: K,
        conn: TunnelConnection,
        *,
        tunnel: TunnelState = TunnelState.OPEN,
        token_valid: bool = True,
    ) -> list[RelayAction[K]]:
        """Connection ``peer`` (protocol state ``conn``) opened after its admission.

        ``tunnel`` and ``token_valid`` are what the service says now: the tunnel may have
        closed, or the token been rotated, during the handshake.
        """
        mode = conn.mode.value
        self._pending[mode] -= 1
        endpoint = _Endpoint(peer, mode, conn, conn.streams)
        self._endpoints[peer] = endpoint
        actions: list[RelayAction[K]] = []
        first = conn.service_ids_message()
        if first is not None:
            # V2/V3 guides, 'Step 1'; localproxy: SERVICE_IDS must be the first message.
            actions.append(self._send(endpoint, first))
        old = self._live.get(mode)
        # Live before the old one is closed: a replaced side is not disconnected.
        self._live[mode] = peer
        if old is not None:
            # docs/fidelity.md: a new connection replaces the old one, closed with 1008;
            # the peer receives STREAM_RESET for its active streams.
            self._close(old, 1008, f"Replaced by a new {mode} connection", actions)
        if mode in self._ever_connected:
            # The same for a reconnect after the old connection ended (V3 guide,
            # 'Recovering from a crash': upon reconnection the service resets all active
            # streams). A restarted client numbers its streams from 1 again, and a
            # destination ignores a STREAM_START for the stream id it has active.
            self._reset_streams(_OTHER[mode], actions)
        self._ever_connected.add(mode)
        if tunnel is TunnelState.CLOSED:
            self._close(peer, 1000, CLOSED, actions)
        elif tunnel is TunnelState.EXPIRED:
            self._close(peer, 1000, EXPIRED, actions)
        elif tunnel is TunnelState.DELETED:
            self._close(peer, 1000, DELETED, actions)
        elif not token_valid:
            self._close(peer, 1008, REVOKED, actions)
        return actions

    def disconnected(
        self, peer: K, code: int | None = None, reason: str | None = None
    ) -> list[RelayAction[K]]:
        """Connection ``peer`` ended (however it ended; with close ``code``/``reason``)."""
        endpoint = self._endpoints.pop(peer, None)
        if endpoint is None or endpoint.reported:
            return []
        if self._live.get(endpoint.mode) is peer:
            del self._live[endpoint.mode]
        return self._release(endpoint.mode, code, reason)

    def _release(
        self, mode: str, code: int | None = None, reason: str | None = None
    ) -> list[RelayAction[K]]:
        if mode not in self._live and self._pending[mode] <= 0:
            return [Disconnected(mode, code, reason)]
        return []

    def close(
        self, peer: K, code: int, reason: str, *, discard_input: bool = False
    ) -> list[RelayAction[K]]:
        """Close ``peer`` (the caller's decision, e.g. on an internal error).

        It leaves the tunnel at once: its later traffic is not relayed, and a new
        connection on its side is not a replacement (a disconnect is silent).
        """
        actions: list[RelayAction[K]] = []
        self._close(peer, code, reason, actions, discard_input=discard_input)
        return actions

    def _close(
        self,
        peer: K,
        code: int,
        reason: str,
        actions: list[RelayAction[K]],
        *,
        discard_input: bool = False,
    ) -> None:
        endpoint = self._endpoints.get(peer)
        if endpoint is not None and self._live.get(endpoint.mode) is peer:
            del self._live[endpoint.mode]
            # docs/fidelity.md: the side is disconnected once the relay lets go of it,
            # before the close frame goes out, so no client sees its connection closed
            # while DescribeTunnel still says CONNECTED.
            released = self._release(endpoint.mode, code, reason)
            if released:
                endpoint.reported = True
                actions.extend(released)
        actions.append(Close(peer, code, reason, discard_input))

    def send(self, peer: K, message: TunnelMessage) -> Send[K]:
        """Send a message the service generates to ``peer`` (e.g. an injected reset)."""
        return self._send(self._endpoints[peer], message)

    def _send(
        self, endpoint: _Endpoint[K], message: TunnelMessage, frame: bytes | None = None
    ) -> Send[K]:
        endpoint.streams.apply(message, from_client=False)  # TunnelConnection.note_sent
        return Send(endpoint.peer, message, frame)

    def _reset_streams(self, mode: str, actions: list[RelayAction[K]]) -> None:
        peer = self._live.get(mode)
        if peer is not None:
            endpoint = self._endpoints[peer]
            for message in endpoint.conn.stream_reset_messages():
                actions.append(self._send(endpoint, message))

    # -- what clients send ------------------------------------------------------------

    def receive_data(self, peer: K, data: bytes) -> list[RelayAction[K]]:
        """Bytes of one binary WebSocket message (or fragment) from ``peer``."""
        endpoint = self._endpoints.get(peer)
        if endpoint is None or endpoint.failed:
            return []  # it broke a rule: nothing more is processed
        conn = endpoint.conn
        actions: list[RelayAction[K]] = []
        try:
            size = len(data)
            if size >= 2 and (data[0] << 8 | data[1]) == size - 2 and not conn.buffered:
                # The usual case, one whole frame: TunnelConnection.receive_data's steps
                # without its buffer, and the frame is forwarded unchanged. The body is a
                # view, not a 64 KB copy.
                message = decode_message(memoryview(data)[LENGTH_PREFIX_SIZE:])
                validate_message(message, conn.context)
                conn.streams.apply(message, from_client=True)
                self._forward(endpoint, message, data, actions)
            else:
                for message, frame in conn.receive_frames(data):
                    self._forward(endpoint, message, frame, actions)
        except ProtocolError as exc:
            for message, frame in zip(exc.accepted, exc.accepted_frames, strict=True):
                self._forward(endpoint, message, frame, actions)
            self._violation(endpoint, exc, actions)
        return actions

    def receive_text(self, peer: K) -> list[RelayAction[K]]:
        """A text message from ``peer``: closed with 1003; nothing more is processed."""
        endpoint = self._endpoints.get(peer)
        if endpoint is None or endpoint.failed:
            return []
        endpoint.failed = True
        return self.close(
            peer, 1003, "Text frames are not supported: use binary", discard_input=True
        )

    def _forward(
        self,
        endpoint: _Endpoint[K],
        message: TunnelMessage,
        frame: bytes | None,
        actions: list[RelayAction[K]],
    ) -> None:
        peer = endpoint.peer
        actions.append(Received(peer, message))
        live = self._live
        mode = endpoint.mode
        if live.get(mode) is not peer:
            return  # replaced: its traffic no longer reaches the tunnel
        other_mode = _OTHER[mode]
        other = live.get(other_mode)
        if other is not None:
            # self._send inlined: this runs for every relayed message.
            self._endpoints[other].streams.apply(message, from_client=False)
            actions.append(Send(other, message, frame))
        else:
            # docs/fidelity.md: no buffer for a side that is not connected.
            actions.append(Dropped(other_mode, message, f"{other_mode} not connected"))

    def _violation(
        self, endpoint: _Endpoint[K], exc: ProtocolError, actions: list[RelayAction[K]]
    ) -> None:
        endpoint.failed = True
        actions.append(Violation(endpoint.peer, exc))
        # docs/fidelity.md: only the offender is closed (1002, naming the rule); its peer
        # receives STREAM_RESET for the affected streams.
        if self._live.get(endpoint.mode) is endpoint.peer:
            self._reset_streams(_OTHER[endpoint.mode], actions)
        self._close(endpoint.peer, 1002, f"{exc.rule}: {exc.detail}", actions, discard_input=True)

    # -- what the control plane says ------------------------------------------------------

    def tunnel_closed(self, *, expired: bool) -> list[RelayAction[K]]:
        """CloseTunnel (or expiry, ``expired``) made the tunnel CLOSED: close both sides."""
        # docs/fidelity.md: CloseTunnel and expiry close both sides with 1000.
        return self._close_all(1000, EXPIRED if expired else CLOSED)

    def tunnel_deleted(self) -> list[RelayAction[K]]:
        """The tunnel is gone (deleted, or the service reset): close both sides."""
        return self._close_all(1000, DELETED)

    def tokens_rotated(
        self, services: Iterable[str], revoked: Collection[K]
    ) -> list[RelayAction[K]]:
        """RotateTunnelAccessToken: ``revoked`` connections' tokens no longer hold, and
        the tunnel's services are now ``services``.
        """
        # docs/fidelity.md: rotating a mode's token closes that mode's connection (1008).
        # One service list per tunnel: a rotation's destinationConfig may change the
        # services, and the protocol cannot tell a live client (SERVICE_IDS comes
        # once, at connect), so a connection announced another list is closed too.
        wanted = set(services)
        actions: list[RelayAction[K]] = []
        for peer in list(self._live.values()):
            conn = self._endpoints[peer].conn
            if peer in revoked:
                self._close(peer, 1008, REVOKED, actions)
            elif conn.version.has_service_ids and set(conn.services) != wanted:
                self._close(peer, 1008, SERVICES_CHANGED, actions)
        return actions

    def _close_all(self, code: int, reason: str) -> list[RelayAction[K]]:
        actions: list[RelayAction[K]] = []
        for peer in list(self._live.values()):
            self._close(peer, code, reason, actions)
        return actions
