"""The broker's logic without I/O: sessions, subscriptions, routing, authorization.

A :class:`Session` is one client connection. The adapter hands it received bytes and
gives it two callbacks, ``send(bytes)`` and ``close()``; everything it decides (answers,
deliveries to other sessions, refusals) goes through them. :class:`BrokerCore` holds the
sessions by client id and routes messages between them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ._codec import (
    MQTT_5,
    MQTT_311,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    PacketReader,
    PingReq,
    PingResp,
    Properties,
    ProtocolViolation,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode,
    topic_matches,
    validate_filter,
    validate_topic,
)

__all__ = ["BrokerCore", "Message", "Session", "notify_filter_reaches_other_things"]

#: AWS IoT Core's maximum MQTT packet size (128 KB).
MAX_PACKET_SIZE: Final = 128 * 1024
#: AWS IoT Core's default quota of subscriptions per connection.
SUBSCRIPTIONS_PER_CONNECTION: Final = 50

# The PUBLISH properties that travel from the publisher to subscribers (MQTT 5, 3.3.2.3).
_FORWARDED: Final = frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x26})
_NOTIFY_LEVELS: Final = ("$aws", "things", None, "tunnels", "notify")


@dataclass(frozen=True)
class Message:
    """An application message on its way to subscribers."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    properties: Properties = field(default_factory=list)
    sender: str | None = None  # client id of the publisher (for No Local)


def notify_filter_reaches_other_things(topic_filter: str, thing_name: str | None) -> bool:
    """Whether ``topic_filter`` could receive the notify topic of a thing other than ``thing_name``.

    The recommended device policy allows ``iot:Subscribe`` on exactly
    ``topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/tunnels/notify``; policy
    resources match filters as strings, so any other filter that can reach a notify topic
    (a wildcard, another thing's name) is refused.
    """
    own = None if thing_name is None else f"$aws/things/{thing_name}/tunnels/notify"
    if topic_filter == own:
        return False
    levels = topic_filter.split("/")
    if levels[0] in ("+", "#"):
        return False  # wildcards never match a topic starting with "$"
    for index, level in enumerate(levels):
        if level == "#":
            return True
        if index >= len(_NOTIFY_LEVELS):
            return False
        expected = _NOTIFY_LEVELS[index]
        if level != "+" and expected is not None and level != expected:
            return False
    return len(levels) == len(_NOTIFY_LEVELS)


def is_notify_topic(topic: str) -> bool:
    """Whether ``topic`` is some thing's ``$aws/things/THING/tunnels/notify``."""
    return topic_matches("$aws/things/+/tunnels/notify", topic)


class BrokerCore:
    """Sessions by client id, their subscriptions, retained messages; routes messages."""

    def __init__(
        self,
        *,
        authorization: bool = True,
        max_packet_size: int = MAX_PACKET_SIZE,
        subscriptions_per_connection: int = SUBSCRIPTIONS_PER_CONNECTION,
    ) -> None:
        """Configure the rules every session follows."""
        self.authorization = authorization
        self.max_packet_size = max_packet_size
        self.subscriptions_per_connection = subscriptions_per_connection
        self.sessions: dict[str, Session] = {}
        self.retained: dict[str, Message] = {}
        self._exact: dict[str, set[Session]] = {}  # topic filter without wildcards -> sessions
        self._wildcard: set[Session] = set()  # sessions with at least one wildcard filter
        self._assigned = itertools.count(1)
        self._subscribed = threading.Condition()
        self._exact_counts: dict[str, int] = {}  # notify topic -> sessions subscribed

    # -- routing --------------------------------------------------------------------------

    def publish(self, message: Message) -> int:
        """Deliver ``message`` to every matching subscription; return how many got it."""
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        targets = set(self._exact.get(message.topic, ()))
        for session in self._wildcard:
            if any(topic_matches(f, message.topic) for f in session.subscriptions):
                targets.add(session)
        delivered = 0
        for session in targets:
            if session.deliver(message):
                delivered += 1
        return delivered

    def subscribers(self, topic: str) -> int:
        """How many connected sessions subscribe to exactly ``topic``."""
        with self._subscribed:
            return self._exact_counts.get(topic, 0)

    def wait_for_subscribers(self, topic: str, count: int, timeout: float) -> bool:
        """Block until ``count`` sessions subscribe to exactly ``topic`` (thread-safe)."""
        with self._subscribed:
            return self._subscribed.wait_for(
                lambda: self._exact_counts.get(topic, 0) >= count, timeout
            )

    # -- bookkeeping used by sessions -----------------------------------------------------

    def assign_client_id(self) -> str:
        return f"securetunnel-{next(self._assigned)}"

    def attach(self, session: Session) -> None:
        previous = self.sessions.get(session.client_id)
        if previous is not None and previous is not session:
            previous.take_over()
        self.sessions[session.client_id] = session

    def detach(self, session: Session) -> None:
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        for topic_filter in list(session.subscriptions):
            self.unindex(session, topic_filter)
        self._wildcard.discard(session)

    def index(self, session: Session, topic_filter: str) -> None:
        if "+" in topic_filter or "#" in topic_filter:
            self._wildcard.add(session)
        else:
            self._exact.setdefault(topic_filter, set()).add(session)
            with self._subscribed:
                self._exact_counts[topic_filter] = self._exact_counts.get(topic_filter, 0) + 1
                self._subscribed.notify_all()

    def unindex(self, session: Session, topic_filter: str) -> None:
        if "+" in topic_filter or "#" in topic_filter:
            return  # the wildcard set is cleaned on detach
        sessions = self._exact.get(topic_filter)
        if sessions is not None and session in sessions:
            sessions.discard(session)
            if not sessions:
                del self._exact[topic_filter]
            with self._subscribed:
                left = self._exact_counts.get(topic_filter, 1) - 1
                if left:
                    self._exact_counts[topic_filter] = left
                else:
                    self._exact_counts.pop(topic_filter, None)


class _Refused(Exception):
    """Close the connection (after a DISCONNECT with ``reason`` for MQTT 5)."""

    def __init__(self, reason: int, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Session:
    """One client connection: decodes its packets, answers them, delivers messages to it.

    ``thing_name`` is the thing its TLS client certificate is attached to (``None`` on
    the plain-TCP listener, where the client id stands for the thing name). ``send``
    writes bytes to the client; ``close`` ends the connection (the adapter then calls
    :meth:`connection_lost`).
    """

    def __init__(
        self,
        core: BrokerCore,
        send: Callable[[bytes], None],
        close: Callable[[], None],
        *,
        thing_name: str | None = None,
        tls: bool = False,
    ) -> None:
        """A session waiting for its CONNECT."""
        self.core = core
        self._send = send
        self._close = close
        self.tls = tls
        self.certificate_thing = thing_name
        self.reader = PacketReader(core.max_packet_size)
        self.level: int | None = None
        self.client_id = ""
        self.keep_alive = 0
        self.subscriptions: dict[str, int] = {}  # topic filter -> options byte
        self.will: Message | None = None
        self.closed = False
        self.refusal: str | None = None  # why the broker closed the connection, if it did
        self._next_id = 0
        self._inflight: set[int] = set()
        self._incoming_inflight = 0

    def __repr__(self) -> str:
        return f"<Session {self.client_id or '(connecting)'} level={self.level}>"

    @property
    def connected(self) -> bool:
        """Whether the CONNECT was accepted and the connection is open."""
        return self.level is not None and not self.closed

    @property
    def thing_name(self) -> str | None:
        """The thing the client acts for: its certificate's thing, else its client id."""
        if self.tls:
            return self.certificate_thing
        return self.client_id or None

    # -- input ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Handle bytes from the client; protocol errors close the connection."""
        if self.closed:
            return
        self.reader.feed(data)
        try:
            for packet in self.reader.packets():
                self._handle(packet)
                if self.closed:
                    return
        except _Refused as refused:
            self._refuse(refused.reason, str(refused))
        except (MalformedPacket, ProtocolViolation) as error:
            if self.level is None and error.reason_code == 0x84:
                self._unsupported_version(str(error))
            else:
                self._refuse(error.reason_code, str(error))

    def connection_lost(self) -> None:
        """The connection ended (either side): publish the Will if due, forget the session."""
        was_connected = self.level is not None
        self.closed = True
        if not was_connected:
            return
        self.core.detach(self)
        will, self.will = self.will, None
        if will is not None and self._may_publish(will.topic):
            self.core.publish(will)

    def keep_alive_expired(self) -> None:
        """No packet for 1.5 times the keep-alive: close (MQTT 5: DISCONNECT 0x8D)."""
        self._refuse(0x8D, f"no packet within 1.5 x keep-alive ({self.keep_alive} s)")

    def take_over(self) -> None:
        """Another connection connected with this client id (MQTT 5: DISCONNECT 0x8E)."""
        self._refuse(0x8E, f"client id {self.client_id!r} connected again")

    def server_shutdown(self) -> None:
        """The broker stops (MQTT 5: DISCONNECT 0x8B)."""
        self._refuse(0x8B, "broker shutting down")

    # -- output --------------------------------------------------------------------------

    def deliver(self, message: Message) -> bool:
        """Send ``message`` if a subscription of this session matches; return whether sent."""
        if not self.connected:
            return False
        best: int | None = None
        for topic_filter, options in self.subscriptions.items():
            if not topic_matches(topic_filter, message.topic):
                continue
            if options & 0x04 and message.sender == self.client_id:
                continue  # No Local
            qos = options & 0x03
            best = qos if best is None else max(best, qos)
        if best is None:
            return False
        try:
            self.send_message(message, min(best, message.qos))
        except _Refused as refused:
            self._refuse(refused.reason, str(refused))
            return False
        return True

    def send_message(self, message: Message, qos: int, retain: bool = False) -> None:
        packet_id = None
        if qos:
            packet_id = self._packet_id()
            self._inflight.add(packet_id)
        props = message.properties if self.level == MQTT_5 else []
        self._write(Publish(message.topic, message.payload, qos, retain, False, packet_id, props))

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._inflight:
                return self._next_id
        raise _Refused(0x93, "65535 QoS 1 messages are waiting for PUBACK")

    def _write(self, packet: Packet) -> None:
        self._send(encode(packet, self.level or MQTT_311))

    def _refuse(self, reason: int, message: str) -> None:
        if self.closed:
            return
        self.refusal = message
        if self.level == MQTT_5:
            self._write(Disconnect(reason, [(0x1F, message[:200])]))
        self.closed = True
        self._close()

    def _unsupported_version(self, message: str) -> None:
        # 3.1.1 return code 0x01 / MQTT 5 reason code 0x84, then close.
        self.refusal = message
        self._send(encode(ConnAck(0x01), MQTT_311))
        self.closed = True
        self._close()

    # -- packets -------------------------------------------------------------------------

    def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Connect):
            if self.level is not None:
                raise _Refused(0x82, "a second CONNECT on one connection")
            self._connect(packet)
        elif isinstance(packet, Publish):
            self._publish(packet)
        elif isinstance(packet, PubAck):
            self._ack(packet)
        elif isinstance(packet, Subscribe):
            self._subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            self._unsubscribe(packet)
        elif isinstance(packet, PingReq):
            self._write(PingResp())
        elif isinstance(packet, Disconnect):
            if packet.reason != 0x04:
                self.will = None  # a normal DISCONNECT discards the Will
            self.closed = True
            self._close()
        elif isinstance(packet, Auth):
            raise _Refused(0x82, "AWS IoT Core does not support the AUTH packet")
        else:
            name = type(packet).__name__.upper()
            raise _Refused(0x82, f"a client must not send {name}")

    def _connect(self, packet: Connect) -> None:
        level = packet.level
        self.reader.level = level
        self.level = level
        client_id = packet.client_id
        props: Properties = []
        if not client_id:
            if level == MQTT_311 and not packet.clean_start:
                self._write(ConnAck(0x02))  # identifier rejected
                self.closed = True
                self._close()
                return
            client_id = self.core.assign_client_id()
            if level == MQTT_5:
                props.append((0x12, client_id))
        self.client_id = client_id
        self.keep_alive = packet.keep_alive
        if packet.will is not None:
            will = packet.will
            if will.qos > 1:
                self._connack_refused(0x9B, "AWS IoT Core does not support QoS 2")
                return
            validate_topic(will.topic)
            self.will = Message(
                will.topic,
                will.payload,
                will.qos,
                will.retain,
                [p for p in will.properties if p[0] in _FORWARDED],
                client_id,
            )
        if level == MQTT_5:
            props += [
                (0x24, 1),  # Maximum QoS
                (0x22, 0),  # Topic Alias Maximum
                (0x27, self.core.max_packet_size),
                (0x29, 0),  # Subscription Identifier Available
                (0x2A, 0),  # Shared Subscription Available
            ]
        self.core.attach(self)
        self._write(ConnAck(0, False, props))

    def _connack_refused(self, reason: int, message: str) -> None:
        self.refusal = message
        self._write(ConnAck(reason if self.level == MQTT_5 else 0x05))
        self.level = None
        self.closed = True
        self._close()

    def _may_publish(self, topic: str) -> bool:
        return not (self.core.authorization and is_notify_topic(topic))

    def _publish(self, packet: Publish) -> None:
        validate_topic(packet.topic)
        if packet.qos == 2:
            raise _Refused(0x9B, "AWS IoT Core does not support QoS 2")
        for ident, _ in packet.properties:
            if ident == 0x23:
                raise _Refused(0x94, "topic alias used, but Topic Alias Maximum is 0")
        if not self._may_publish(packet.topic):
            message = (
                f"{self.client_id!r} is not authorized to publish to {packet.topic!r}: "
                "no device may publish to $aws/things/+/tunnels/notify"
            )
            if self.level == MQTT_5 and packet.qos == 1 and packet.packet_id is not None:
                self.refusal = message
                self._write(PubAck(packet.packet_id, 0x87, [(0x1F, message[:200])]))
                return
            raise _Refused(0x87, message)
        self.core.publish(
            Message(
                packet.topic,
                packet.payload,
                packet.qos,
                packet.retain,
                [p for p in packet.properties if p[0] in _FORWARDED],
                self.client_id,
            )
        )
        if packet.qos == 1 and packet.packet_id is not None:
            self._write(PubAck(packet.packet_id))

    def _ack(self, packet: PubAck) -> None:
        if packet.kind.name != "PUBACK":
            raise _Refused(0x82, f"AWS IoT Core does not support {packet.kind.name}")
        self._inflight.discard(packet.packet_id)

    def _subscribe(self, packet: Subscribe) -> None:
        v5 = self.level == MQTT_5
        for ident, _ in packet.properties:
            if ident == 0x0B:
                raise _Refused(0xA1, "AWS IoT Core does not support subscription identifiers")
        reasons: list[int] = []
        retained_for: list[str] = []
        for topic_filter, options in packet.filters:
            try:
                validate_filter(topic_filter)
            except ProtocolViolation as error:
                if not v5:
                    raise
                reasons.append(error.reason_code)
                continue
            if topic_filter.startswith("$share/"):
                if not v5:
                    raise _Refused(0x9E, "shared subscriptions are not supported")
                reasons.append(0x9E)
                continue
            if self.core.authorization and notify_filter_reaches_other_things(
                topic_filter, self.thing_name
            ):
                who = self.thing_name or self.client_id
                message = (
                    f"{who!r} is not authorized to subscribe to {topic_filter!r}: a device may "
                    f"subscribe only to its own $aws/things/{who}/tunnels/notify"
                )
                if not v5:
                    raise _Refused(0x87, message)
                self.refusal = message
                reasons.append(0x87)
                continue
            new = topic_filter not in self.subscriptions
            if new and len(self.subscriptions) >= self.core.subscriptions_per_connection:
                limit = self.core.subscriptions_per_connection
                message = f"more than {limit} subscriptions on one connection"
                if not v5:
                    raise _Refused(0x97, message)
                self.refusal = message
                reasons.append(0x97)
                continue
            qos = min(options & 0x03, 1)
            self.subscriptions[topic_filter] = (options & ~0x03) | qos
            if new:
                self.core.index(self, topic_filter)
            reasons.append(qos)
            retain_handling = (options >> 4) & 0x03
            if retain_handling == 0 or (retain_handling == 1 and new):
                retained_for.append(topic_filter)
        self._write(SubAck(packet.packet_id, reasons))
        for topic_filter in retained_for:
            self._send_retained(topic_filter)

    def _send_retained(self, topic_filter: str) -> None:
        if "+" in topic_filter or "#" in topic_filter:
            return  # AWS IoT Core: wildcard subscriptions do not receive retained messages
        message = self.core.retained.get(topic_filter)
        if message is not None:
            qos = min(self.subscriptions[topic_filter] & 0x03, message.qos)
            self.send_message(message, qos, retain=True)

    def _unsubscribe(self, packet: Unsubscribe) -> None:
        reasons = []
        for topic_filter in packet.filters:
            if topic_filter in self.subscriptions:
                del self.subscriptions[topic_filter]
                self.core.unindex(self, topic_filter)
                reasons.append(0x00)
            else:
                reasons.append(0x11)  # No subscription existed
        self._write(UnsubAck(packet.packet_id, reasons))
