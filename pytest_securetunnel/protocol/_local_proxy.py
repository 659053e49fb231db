"""A local proxy's stream and connection decisions, as a sans-I/O state machine.

:class:`LocalProxyPolicy` is what the reference local proxy decides, per protocol
version, between the tunnel and local TCP connections: which stream and connection ids
a new local connection uses, what a STREAM_START, STREAM_RESET, CONNECTION_START,
CONNECTION_RESET, SESSION_RESET or DATA from the tunnel means for the local connections,
and what goes back. It takes events (a local connection accepted, connected, failed to
connect or closed; a message from the tunnel) and returns actions (send this message,
write these bytes to that local connection, close it, open one). It knows nothing of
sockets: the caller carries out the actions, in order.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from ._messages import MessageType, TunnelMessage
from ._versions import ClientMode, ProtocolVersion

__all__ = [
    "ConnectLocal",
    "EndLocal",
    "Fatal",
    "Ignored",
    "LocalLink",
    "LocalProxyAction",
    "LocalProxyPolicy",
    "SendMessage",
    "WriteLocal",
]

_INT32_MAX: Final = 2**31 - 1


@dataclasses.dataclass(eq=False)
class LocalLink:
    """One local TCP connection carried over the tunnel as (stream id, connection id).

    ``connection_id`` is 1 when the connection ids are not used on the wire
    (``use_connection_ids`` false: V1/V2, or a V3 client whose peer speaks V2).
    ``service_id`` is the service id on the wire: the one the stream was started with.
    ``service`` is the service's name in the proxy's mapping.
    """

    service: str
    service_id: str
    stream_id: int
    connection_id: int
    use_connection_ids: bool
    ended: bool = False

    @property
    def key(self) -> tuple[int, int]:
        """(stream id, connection id)."""
        return self.stream_id, self.connection_id

    def data_message(self, payload: bytes) -> TunnelMessage:
        """A DATA message carrying ``payload`` for this link."""
        connection_id = self.connection_id if self.use_connection_ids else 0
        return TunnelMessage.data(self.stream_id, payload, self.service_id, connection_id)

    def reset_message(self) -> TunnelMessage:
        """The message that tells the peer this connection ended.

        V3 guide: ConnectionReset with the stream and connection id; V1/V2: StreamReset.
        """
        if self.use_connection_ids:
            return TunnelMessage.connection_reset(
                self.stream_id, self.connection_id, self.service_id
            )
        return TunnelMessage.stream_reset(self.stream_id, self.service_id)


# -- actions --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SendMessage:
    """Send ``message`` over the tunnel."""

    message: TunnelMessage


@dataclasses.dataclass(frozen=True)
class WriteLocal:
    """Write ``payload`` to the local connection of ``link``."""

    link: LocalLink
    payload: bytes


@dataclasses.dataclass(frozen=True)
class EndLocal:
    """Close the local connection of ``link`` (it has already left the tunnel)."""

    link: LocalLink


@dataclasses.dataclass(frozen=True)
class ConnectLocal:
    """Destination: open a local connection to ``service`` for ``message`` (STREAM_START
    or CONNECTION_START); then report :meth:`LocalProxyPolicy.connected` or
    :meth:`LocalProxyPolicy.connect_failed`.
    """

    service: str
    message: TunnelMessage
    use_connection_ids: bool


@dataclasses.dataclass(frozen=True)
class Ignored:
    """``message`` from the tunnel was ignored, for ``reason`` (worth a warning)."""

    message: TunnelMessage
    reason: str


@dataclasses.dataclass(frozen=True)
class Fatal:
    """The proxy must end: ``reason`` says why."""

    reason: str


#: What :class:`LocalProxyPolicy` asks its caller to do.
LocalProxyAction = SendMessage | WriteLocal | EndLocal | ConnectLocal | Ignored | Fatal


@dataclasses.dataclass(eq=False)
class _Service:
    name: str
    wire_id: str
    links: dict[tuple[int, int], LocalLink] = dataclasses.field(default_factory=dict)
    next_connection_id: int = 2
    last_stream_id: int = 0
    #: Source mode, V3: the peer answered without connection ids, so this service
    #: falls back to the V2 format (one connection per stream).
    v2_peer: bool = False

    def links_of(self, stream_id: int | None = None) -> list[LocalLink]:
        return [
            link for link in self.links.values() if stream_id is None or link.stream_id == stream_id
        ]


class LocalProxyPolicy:
    """The local proxy of one tunnel connection: its services and their local links.

    Source mode: each accepted local connection opens a stream with STREAM_START
    (connection 1) or, on V3 while the service's stream is active, adds a connection with
    CONNECTION_START and the next connection id; it ends with CONNECTION_RESET (V3) or
    STREAM_RESET (V1/V2). On V1/V2 a service carries one connection at a time.

    Destination mode: STREAM_START and CONNECTION_START open a local connection; a
    failed connect is answered with STREAM_RESET (new stream) or CONNECTION_RESET (new
    connection).
    """

    def __init__(self, mode: ClientMode | str, version: ProtocolVersion) -> None:
        """A policy for a client of ``mode`` that negotiated ``version``."""
        self.mode = ClientMode(mode)
        self.version = version
        self._services: dict[str, _Service] = {}

    def __repr__(self) -> str:
        return (
            f"<LocalProxyPolicy {self.mode.value} {self.version.subprotocol} "
            f"links={self.open_links}>"
        )

    # -- state --------------------------------------------------------------------------

    def add_service(self, name: str, wire_id: str) -> None:
        """Map the service ``name`` (``wire_id`` on the wire, ``""`` for V1)."""
        self._services[name] = _Service(name, wire_id)

    @property
    def open_links(self) -> int:
        """Number of local connections currently carried by the tunnel."""
        return sum(len(service.links) for service in self._services.values())

    def uses_connection_ids(self, service: str) -> bool:
        """Whether ``service`` carries several connections on one stream (V3, V3 peer).

        When not, local connections of the service go one at a time (localproxy V1/V2).
        """
        return self.version.has_connection_ids and not self._services[service].v2_peer

    # -- source: local connections come and go ----------------------------------------

    def open_link(
        self, service: str, active_stream_id: int | None
    ) -> tuple[LocalLink, TunnelMessage]:
        """A local connection was accepted for ``service``: its link and the message to send.

        ``active_stream_id`` is the service's active stream in the tunnel, if any.
        """
        state = self._services[service]
        v3 = self.uses_connection_ids(service)
        stream_id = active_stream_id if v3 else None
        if stream_id is None:
            # V3 guide: the first connection opens the stream with StreamStart, connection 1.
            # localproxy: stream ids count up per service id from 1.
            state.last_stream_id = state.last_stream_id % _INT32_MAX + 1
            link = LocalLink(service, state.wire_id, state.last_stream_id, 1, v3)
            state.next_connection_id = 2
            start = TunnelMessage.stream_start(link.stream_id, state.wire_id, 1 if v3 else 0)
        else:
            # V3 guide: later connections while the stream is alive use ConnectionStart.
            connection_id = state.next_connection_id
            state.next_connection_id += 1
            link = LocalLink(service, state.wire_id, stream_id, connection_id, True)
            start = TunnelMessage.connection_start(stream_id, connection_id, state.wire_id)
        state.links[link.key] = link
        return link, start

    def end(self, link: LocalLink) -> TunnelMessage | None:
        """The local connection of ``link`` closed (or failed): the message that tells the
        peer, or ``None`` if the link had already ended.
        """
        if link.ended:
            return None
        self._remove(link)
        return link.reset_message()

    def _remove(self, link: LocalLink) -> None:
        link.ended = True
        state = self._services[link.service]
        if state.links.get(link.key) is link:
            del state.links[link.key]

    def end_all(self) -> list[LocalLink]:
        """The tunnel connection ended: every link ends (localproxy resets them all)."""
        ended = [link for service in self._services.values() for link in service.links_of()]
        for link in ended:
            self._remove(link)
        return ended

    # -- destination: local connections for the peer's streams ---------------------------

    def connected(self, request: ConnectLocal) -> LocalLink:
        """The local connection asked for by ``request`` is open: its link."""
        message = request.message
        state = self._services[request.service]
        link = LocalLink(
            request.service,
            message.service_id,  # a V1 peer sends none and gets none back
            message.stream_id,
            message.connection_id or 1,
            request.use_connection_ids,
        )
        state.links[link.key] = link
        return link

    def connect_failed(self, request: ConnectLocal) -> TunnelMessage:
        """The local connection asked for by ``request`` failed: the message to send.

        V3 guide: a failed new stream gets StreamReset, a failed new connection
        ConnectionReset, with the requested ids.
        """
        message = request.message
        if message.type == MessageType.STREAM_START:
            return TunnelMessage.stream_reset(message.stream_id, message.service_id)
        return TunnelMessage.connection_reset(
            message.stream_id, message.connection_id, message.service_id
        )

    # -- messages from the tunnel ----------------------------------------------------------

    def _service_for(self, wire_id: str) -> _Service | None:
        for service in self._services.values():
            if service.wire_id == wire_id:
                return service
        if not wire_id and len(self._services) == 1:
            return next(iter(self._services.values()))  # a V1 peer sends no service id
        return None

    def _end_links(self, links: list[LocalLink]) -> list[LocalProxyAction]:
        for link in links:
            self._remove(link)
        return [EndLocal(link) for link in links]

    def receive(self, message: TunnelMessage) -> list[LocalProxyAction]:
        """A message from the tunnel: what to do."""
        kind = message.type
        if kind == MessageType.SESSION_RESET:
            # All guides: handled like StreamReset for every stream.
            return [EndLocal(link) for link in self.end_all()]
        if kind not in self.version.message_types:
            return self._unknown_type(message)
        service = self._service_for(message.service_id)
        if service is None:
            return [Ignored(message, "no mapping for its service id")]
        link = service.links.get((message.stream_id, message.connection_id or 1))
        if kind == MessageType.DATA:
            if link is None:
                return []
            if link.use_connection_ids and not message.connection_id:
                # localproxy: DATA without connectionId makes it fall back to V2.
                link.use_connection_ids = False
                service.v2_peer = self.mode is ClientMode.SOURCE
            return [WriteLocal(link, message.payload)]
        if kind == MessageType.STREAM_RESET:
            return self._end_links(service.links_of(message.stream_id))
        if kind == MessageType.CONNECTION_RESET:
            return [] if link is None else self._end_links([link])
        if self.mode is ClientMode.DESTINATION:
            return self._start_destination(service, message)
        return []  # A source ignores STREAM_START / CONNECTION_START (the service forbids them).

    def _start_destination(
        self, service: _Service, message: TunnelMessage
    ) -> list[LocalProxyAction]:
        if message.type == MessageType.STREAM_START:
            # V3 guide: a new StreamStart ends the current stream; connectionId absent
            # means a V2 peer, so this stream uses no connection ids.
            actions = self._end_links(service.links_of())
            v3 = self.version.has_connection_ids and message.connection_id != 0
            actions.append(ConnectLocal(service.name, message, v3))
            return actions
        if message.type == MessageType.CONNECTION_START:
            existing = service.links.get((message.stream_id, message.connection_id))
            if existing is not None:
                # V3 guide: ConnectionStart for an open connection id is an error.
                actions = self._end_links([existing])
                actions.append(SendMessage(existing.reset_message()))
                return actions
            return [ConnectLocal(service.name, message, True)]
        return []

    def _unknown_type(self, message: TunnelMessage) -> list[LocalProxyAction]:
        if message.type in (MessageType.CONNECTION_START, MessageType.CONNECTION_RESET):
            # V3 guide: a V2 local proxy does not know these types and sends StreamReset.
            service = self._service_for(message.service_id)
            if service is None:
                return []
            actions = self._end_links(service.links_of(message.stream_id))
            actions.append(
                SendMessage(TunnelMessage.stream_reset(message.stream_id, message.service_id))
            )
            return actions
        if message.ignorable:
            return []  # All guides: an unknown type with ignorable set may be ignored.
        return [Fatal(f"Unexpected message type {message.type_name} (not ignorable)")]
