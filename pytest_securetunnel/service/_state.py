"""Tunnels, tokens and tags: the state of one account in one region."""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING, Any, Literal

from pytest_securetunnel.service._adapters import display_html, display_text

if TYPE_CHECKING:
    from pytest_securetunnel.service._clock import Clock

TunnelStatus = Literal["OPEN", "CLOSED"]
#: A tunnel's two ends, as the API names them (``sourceConnectionState``, ...). The
#: tunneling protocol's :class:`~pytest_securetunnel.protocol.ClientMode` has these values.
Mode = Literal["source", "destination"]

DEFAULT_LIFETIME_MINUTES = 720  # service model, TimeoutConfig: default 12 hours


@dataclass
class ConnectionState:
    """One side's connection state, as DescribeTunnel shows it."""

    status: Literal["CONNECTED", "DISCONNECTED"]
    last_updated_at: float


@dataclass(frozen=True, slots=True)
class DataPlaneEvent:
    """A WebSocket connection of the data plane, as the proxy reported it to the fake.

    ``kind`` is ``connected``, ``refused`` (``code`` is the HTTP status of the refusal,
    ``reason`` its body) or ``disconnected`` (``code``/``reason`` of the WebSocket close
    frame that ended it, when the proxy knows them). ``tunnel_id`` is ``None`` for a
    refused token the fake does not know.
    """

    time: float
    kind: Literal["connected", "refused", "disconnected"]
    mode: str
    tunnel_id: str | None
    code: int | None = None
    reason: str | None = None

    @property
    def text(self) -> str:
        """The event as ``tunnel.events`` words it: ``source disconnected (1000 ...)``."""
        detail = " ".join(part for part in (_code(self.code), self.reason) if part)
        if self.kind == "refused":
            return f"{self.mode} refused: {detail}".rstrip()
        return f"{self.mode} {self.kind} ({detail})" if detail else f"{self.mode} {self.kind}"


def _code(code: int | None) -> str:
    return "" if code is None else str(code)


@dataclass
class TokenRecord:
    """A client access token and what it may still be used for."""

    token: str
    tunnel_id: str
    account_id: str
    region: str
    mode: Mode
    revoked: bool = False
    #: Set by the first successful handshake; the token is single-use unless reused
    #: with this same client token (V3 protocol guide, "client-token").
    client_token: str | None = None
    used: bool = False


@dataclass
class Tunnel:
    """A tunnel's stored state. Status is computed from the clock when read.

    Becoming CLOSED is final: once a read at some ``now`` has found the tunnel past its
    lifetime, :attr:`expired` is set and later reads at an earlier ``now`` (a clock moved
    back) still find it CLOSED, as after CloseTunnel.
    """

    tunnel_id: str
    arn: str
    account_id: str
    region: str
    sequence: int
    created_at: float
    updated_at: float
    lifetime_minutes: int
    description: str | None
    destination_config: dict[str, Any] | None
    tags: dict[str, str]
    source_token: str
    destination_token: str
    source: ConnectionState
    destination: ConnectionState
    #: When CloseTunnel closed it, if it did.
    closed_at: float | None = None
    #: Set once a read found the tunnel past its lifetime; never unset.
    expired: bool = False
    events: list[tuple[float, str]] = field(default_factory=list)
    #: Its data-plane connections: connects, refusals and closes, oldest first.
    data_plane: list[DataPlaneEvent] = field(default_factory=list)
    #: The fake's clock, so displays show lifetimes as the fake sees them.
    clock: Clock | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        """The tunnel and its timeline as text (``print(tunnel)`` in a terminal)."""
        text = display_text(self)
        return repr(self) if text is None else text

    def _repr_html_(self) -> str:
        """The tunnel and its timeline as HTML, for Jupyter."""
        html = display_html(self)
        return escape(repr(self)) if html is None else html

    @property
    def expires_at(self) -> float:
        """When the tunnel's lifetime ends (epoch seconds)."""
        return self.created_at + self.lifetime_minutes * 60.0

    @property
    def thing_name(self) -> str | None:
        """The destination thing name, if the tunnel has one."""
        if self.destination_config is None:
            return None
        name = self.destination_config.get("thingName")
        return None if name is None else str(name)

    @property
    def services(self) -> list[str]:
        """The destination services, in the order given."""
        if self.destination_config is None:
            return []
        return list(self.destination_config.get("services", []))

    def ended_at(self, now: float) -> float | None:
        """When the tunnel became CLOSED (closed or expired), or ``None`` while OPEN.

        Final: a closed tunnel, or one found expired at an earlier read, stays CLOSED
        whatever ``now`` says; its end time stays the CloseTunnel time or the deadline.
        """
        if self.closed_at is not None:
            return self.closed_at
        if not self.expired:
            if now < self.expires_at:
                return None
            self.expired = True
        return self.expires_at

    @property
    def status(self) -> TunnelStatus:
        """``OPEN`` or ``CLOSED`` now, by the fake's clock (the wall clock without one).

        An attribute, as on the ``Tunnel`` that DescribeTunnel returns:
        ``tunnel.status == "OPEN"``. :meth:`status_at` reads it at another time.
        """
        clock = self.clock
        return self.status_at(clock.time() if clock is not None else time.time())

    def status_at(self, now: float) -> TunnelStatus:
        """``OPEN`` or ``CLOSED`` at time ``now`` (epoch seconds)."""
        return "OPEN" if self.ended_at(now) is None else "CLOSED"

    def last_updated_at(self, now: float) -> float:
        """The tunnel's ``lastUpdatedAt`` at time ``now`` (expiry counts as an update)."""
        ended = self.ended_at(now)
        return self.updated_at if ended is None else max(self.updated_at, ended)

    def connection(self, mode: Mode) -> ConnectionState:
        """The connection state of ``mode``'s side."""
        return self.source if mode == "source" else self.destination

    def describe(self, now: float) -> dict[str, Any]:
        """The ``Tunnel`` shape of DescribeTunnel, in wire form."""
        ended = self.ended_at(now)
        out: dict[str, Any] = {
            "tunnelId": self.tunnel_id,
            "tunnelArn": self.arn,
            "status": self.status_at(now),
        }
        for key, state in (
            ("sourceConnectionState", self.source),
            ("destinationConnectionState", self.destination),
        ):
            if ended is not None and state.status == "CONNECTED":
                # A CLOSED tunnel has no live connection (docs/fidelity.md).
                out[key] = {"status": "DISCONNECTED", "lastUpdatedAt": ended}
            else:
                out[key] = {"status": state.status, "lastUpdatedAt": state.last_updated_at}
        if self.description is not None:
            out["description"] = self.description
        if self.destination_config is not None:
            out["destinationConfig"] = _copy_config(self.destination_config)
        out["timeoutConfig"] = {"maxLifetimeTimeoutMinutes": self.lifetime_minutes}
        if self.tags:
            out["tags"] = [{"key": k, "value": v} for k, v in self.tags.items()]
        out["createdAt"] = self.created_at
        out["lastUpdatedAt"] = self.last_updated_at(now)
        return out

    def summary(self, now: float) -> dict[str, Any]:
        """The ``TunnelSummary`` shape of ListTunnels, in wire form."""
        out: dict[str, Any] = {
            "tunnelId": self.tunnel_id,
            "tunnelArn": self.arn,
            "status": self.status_at(now),
        }
        if self.description is not None:
            out["description"] = self.description
        out["createdAt"] = self.created_at
        out["lastUpdatedAt"] = self.last_updated_at(now)
        return out

    def __repr__(self) -> str:
        return (
            f"<Tunnel {self.tunnel_id} thing={self.thing_name!r} services={self.services!r} "
            f"source={self.source.status} destination={self.destination.status}>"
        )


def _copy_config(config: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    if "services" in out:
        out["services"] = list(out["services"])
    return out


@dataclass
class ListSnapshot:
    """A ListTunnels result being paged through: stable across pages."""

    tunnel_ids: tuple[str, ...]
    thing_name: str | None
    offset: int


@dataclass
class Backend:
    """One account in one region: its tunnels and ListTunnels snapshots.

    Tunnels are kept in creation order. Expiry and retention are tracked in heaps so
    that :meth:`refresh` costs nothing when no deadline has passed.
    """

    account_id: str
    region: str
    tunnels: dict[str, Tunnel] = field(default_factory=dict)
    snapshots: dict[str, ListSnapshot] = field(default_factory=dict)
    sequence: int = 0
    open_ids: set[str] = field(default_factory=set)
    _expiries: list[tuple[float, int, str]] = field(default_factory=list)
    _endings: list[tuple[float, int, str]] = field(default_factory=list)

    def add(self, tunnel: Tunnel) -> None:
        """Store a new OPEN tunnel."""
        self.tunnels[tunnel.tunnel_id] = tunnel
        self.open_ids.add(tunnel.tunnel_id)
        heapq.heappush(self._expiries, (tunnel.expires_at, tunnel.sequence, tunnel.tunnel_id))

    def ended(self, tunnel: Tunnel, when: float) -> None:
        """Note that ``tunnel`` became CLOSED at ``when``."""
        if tunnel.tunnel_id in self.open_ids:
            self.open_ids.discard(tunnel.tunnel_id)
            heapq.heappush(self._endings, (when, tunnel.sequence, tunnel.tunnel_id))

    def next_deadline(self, retention: float) -> float | None:
        """When :meth:`refresh` next has something to do, or ``None``."""
        expiry = self._expiries[0][0] if self._expiries else None
        if not self._endings:
            return expiry
        ending = self._endings[0][0] + retention
        return ending if expiry is None else min(expiry, ending)

    def refresh(self, now: float, retention: float) -> tuple[list[Tunnel], list[Tunnel], list[str]]:
        """Apply every deadline passed by ``now``.

        Returns (newly expired, gone past retention, IDs of every tunnel whose retention
        ended, deleted ones included).
        """
        expired: list[Tunnel] = []
        while self._expiries and self._expiries[0][0] <= now:
            when, _, tunnel_id = heapq.heappop(self._expiries)
            tunnel = self.tunnels.get(tunnel_id)
            if tunnel is not None and tunnel_id in self.open_ids:
                tunnel.expired = True
                self.ended(tunnel, when)
                expired.append(tunnel)
        gone: list[Tunnel] = []
        released: list[str] = []
        while self._endings and self._endings[0][0] + retention <= now:
            _, _, tunnel_id = heapq.heappop(self._endings)
            released.append(tunnel_id)
            tunnel = self.tunnels.pop(tunnel_id, None)
            if tunnel is not None:
                gone.append(tunnel)
        return expired, gone, released

    def newest_first(self) -> Iterator[Tunnel]:
        """The stored tunnels, newest first."""
        return reversed(list(self.tunnels.values()))
