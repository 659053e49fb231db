"""MQTT 3.1.1 and 5.0 control packets, sans-I/O: bytes in, packets out, and back.

Only what a broker and its test clients need: every packet type of both versions is
decoded and encoded; validation follows the two specifications (OASIS MQTT 3.1.1 and
5.0), and a violation raises :class:`MalformedPacket` or :class:`ProtocolViolation` with
the MQTT 5 reason code a server sends before it closes the connection.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_securetunnel._errors import SecureTunnelError

__all__ = [
    "MQTT_5",
    "MQTT_311",
    "Auth",
    "ConnAck",
    "Connect",
    "Disconnect",
    "MalformedPacket",
    "Packet",
    "PacketReader",
    "PacketTooLarge",
    "PacketType",
    "PingReq",
    "PingResp",
    "Properties",
    "ProtocolViolation",
    "PubAck",
    "Publish",
    "SubAck",
    "Subscribe",
    "UnsubAck",
    "Unsubscribe",
    "Will",
    "encode",
    "topic_matches",
    "validate_filter",
    "validate_topic",
]

MQTT_311: Final = 4  # protocol level of MQTT 3.1.1
MQTT_5: Final = 5

#: MQTT 5 properties as (identifier, value) pairs, in order (user properties repeat).
Properties = list[tuple[int, Any]]


class PacketType(enum.IntEnum):
    """The control packet types (fixed header, upper four bits)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class MalformedPacket(SecureTunnelError, ValueError):
    """Bytes that are not a well-formed packet (MQTT 5 reason code 0x81)."""

    reason_code = 0x81


class ProtocolViolation(SecureTunnelError, ValueError):
    """A well-formed packet the protocol does not allow here (reason code 0x82 unless set)."""

    def __init__(self, message: str, reason_code: int = 0x82) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class PacketTooLarge(ProtocolViolation):
    """A packet larger than the receiver's maximum packet size (reason code 0x95)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"packet of {size} bytes exceeds the maximum packet size of {limit} bytes", 0x95
        )
        self.size = size
        self.limit = limit


# -- packets ----------------------------------------------------------------------------


@dataclass
class Will:
    """The Will Message of a CONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=list)


@dataclass
class Connect:
    """CONNECT (client to server)."""

    client_id: str
    level: int = MQTT_311
    clean_start: bool = True
    keep_alive: int = 60
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = field(default_factory=list)
    protocol_name: str = "MQTT"


@dataclass
class ConnAck:
    """CONNACK: ``reason`` is the 3.1.1 return code or the MQTT 5 reason code."""

    reason: int = 0
    session_present: bool = False
    properties: Properties = field(default_factory=list)


@dataclass
class Publish:
    """PUBLISH (either direction)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=list)


@dataclass
class PubAck:
    """PUBACK, PUBREC, PUBREL or PUBCOMP (``kind`` says which)."""

    packet_id: int
    reason: int = 0
    properties: Properties = field(default_factory=list)
    kind: PacketType = PacketType.PUBACK


@dataclass
class Subscribe:
    """SUBSCRIBE: ``filters`` are (topic filter, options byte; QoS in the low two bits)."""

    packet_id: int
    filters: list[tuple[str, int]]
    properties: Properties = field(default_factory=list)


@dataclass
class SubAck:
    """SUBACK: one return or reason code per filter."""

    packet_id: int
    reasons: list[int]
    properties: Properties = field(default_factory=list)


@dataclass
class Unsubscribe:
    """UNSUBSCRIBE."""

    packet_id: int
    filters: list[str]
    properties: Properties = field(default_factory=list)


@dataclass
class UnsubAck:
    """UNSUBACK (``reasons`` are MQTT 5 only)."""

    packet_id: int
    reasons: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=list)


@dataclass
class PingReq:
    """PINGREQ."""


@dataclass
class PingResp:
    """PINGRESP."""


@dataclass
class Disconnect:
    """DISCONNECT (reason code and properties are MQTT 5 only)."""

    reason: int = 0
    properties: Properties = field(default_factory=list)


@dataclass
class Auth:
    """AUTH (MQTT 5 only)."""

    reason: int = 0
    properties: Properties = field(default_factory=list)


Packet = (
    Connect
    | ConnAck
    | Publish
    | PubAck
    | Subscribe
    | SubAck
    | Unsubscribe
    | UnsubAck
    | PingReq
    | PingResp
    | Disconnect
    | Auth
)

# -- primitive types --------------------------------------------------------------------

_BYTE, _U16, _U32, _VARINT, _UTF8, _BINARY, _PAIR = range(7)

#: MQTT 5 property identifiers and their types (MQTT 5.0, section 2.2.2.2).
_PROPERTY_TYPES: Final = {
    0x01: _BYTE,  # Payload Format Indicator
    0x02: _U32,  # Message Expiry Interval
    0x03: _UTF8,  # Content Type
    0x08: _UTF8,  # Response Topic
    0x09: _BINARY,  # Correlation Data
    0x0B: _VARINT,  # Subscription Identifier
    0x11: _U32,  # Session Expiry Interval
    0x12: _UTF8,  # Assigned Client Identifier
    0x13: _U16,  # Server Keep Alive
    0x15: _UTF8,  # Authentication Method
    0x16: _BINARY,  # Authentication Data
    0x17: _BYTE,  # Request Problem Information
    0x18: _U32,  # Will Delay Interval
    0x19: _BYTE,  # Request Response Information
    0x1A: _UTF8,  # Response Information
    0x1C: _UTF8,  # Server Reference
    0x1F: _UTF8,  # Reason String
    0x21: _U16,  # Receive Maximum
    0x22: _U16,  # Topic Alias Maximum
    0x23: _U16,  # Topic Alias
    0x24: _BYTE,  # Maximum QoS
    0x25: _BYTE,  # Retain Available
    0x26: _PAIR,  # User Property
    0x27: _U32,  # Maximum Packet Size
    0x28: _BYTE,  # Wildcard Subscription Available
    0x29: _BYTE,  # Subscription Identifier Available
    0x2A: _BYTE,  # Shared Subscription Available
}

_MAX_VARINT: Final = 268_435_455


class _Reader:
    """Reads the primitive types of MQTT from one packet's bytes."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, size: int) -> bytes:
        if size > self.remaining:
            raise MalformedPacket(
                f"packet ends {size - self.remaining} byte(s) early: needed {size} more at "
                f"offset {self.pos}"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise MalformedPacket("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def utf8(self) -> str:
        raw = self.binary()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket(f"string is not valid UTF-8: {raw[:40]!r}") from exc
        if "\x00" in text:
            raise MalformedPacket(f"string contains U+0000: {text[:40]!r}")
        return text

    def properties(self) -> Properties:
        size = self.varint()
        end = self.pos + size
        if end > len(self.data):
            raise MalformedPacket(f"property length {size} runs past the end of the packet")
        props: Properties = []
        while self.pos < end:
            ident = self.varint()
            kind = _PROPERTY_TYPES.get(ident)
            if kind is None:
                raise MalformedPacket(f"unknown property identifier 0x{ident:02X}")
            props.append((ident, self._value(kind)))
        if self.pos != end:
            raise MalformedPacket("a property runs past the declared property length")
        return props

    def _value(self, kind: int) -> Any:
        if kind == _BYTE:
            return self.byte()
        if kind == _U16:
            return self.u16()
        if kind == _U32:
            return self.u32()
        if kind == _VARINT:
            return self.varint()
        if kind == _UTF8:
            return self.utf8()
        if kind == _BINARY:
            return self.binary()
        return (self.utf8(), self.utf8())


def _varint(value: int) -> bytes:
    if not 0 <= value <= _MAX_VARINT:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _binary(data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError(f"{len(data)} bytes do not fit an MQTT binary field (max 65535)")
    return len(data).to_bytes(2, "big") + data


def _utf8(text: str) -> bytes:
    return _binary(text.encode())


def _properties(props: Properties) -> bytes:
    out = bytearray()
    for ident, value in props:
        kind = _PROPERTY_TYPES[ident]
        out += _varint(ident)
        if kind == _BYTE:
            out.append(value)
        elif kind == _U16:
            out += value.to_bytes(2, "big")
        elif kind == _U32:
            out += value.to_bytes(4, "big")
        elif kind == _VARINT:
            out += _varint(value)
        elif kind == _UTF8:
            out += _utf8(value)
        elif kind == _BINARY:
            out += _binary(value)
        else:
            out += _utf8(value[0]) + _utf8(value[1])
    return _varint(len(out)) + bytes(out)


# -- topics -----------------------------------------------------------------------------


def validate_topic(topic: str) -> None:
    """Raise :class:`ProtocolViolation` (0x90) unless ``topic`` is a valid topic name."""
    if not topic:
        raise ProtocolViolation("topic name is empty", 0x90)
    if "+" in topic or "#" in topic:
        raise ProtocolViolation(f"topic name {topic!r} contains a wildcard", 0x90)


def validate_filter(topic_filter: str) -> None:
    """Raise :class:`ProtocolViolation` (0x8F) unless ``topic_filter`` is a valid filter."""
    if not topic_filter:
        raise ProtocolViolation("topic filter is empty", 0x8F)
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ProtocolViolation(
                f"topic filter {topic_filter!r}: '#' must be a whole level, and the last", 0x8F
            )
        if "+" in level and level != "+":
            raise ProtocolViolation(
                f"topic filter {topic_filter!r}: '+' must be a whole level", 0x8F
            )


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (wildcards never match a leading ``$``).

    As in AWS IoT Core, ``a/#`` matches ``a/`` and everything below, but not the parent
    ``a`` itself (the MQTT specifications say it does).
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return index < len(topic_levels)
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


# -- decoding ---------------------------------------------------------------------------

_FIXED_FLAGS: Final = {
    PacketType.PUBREL: 0b0010,
    PacketType.SUBSCRIBE: 0b0010,
    PacketType.UNSUBSCRIBE: 0b0010,
}


def _decode_connect(r: _Reader) -> Connect:
    name = r.utf8()
    level = r.byte()
    if name != "MQTT" or level not in (MQTT_311, MQTT_5):
        # The caller answers with CONNACK "unacceptable protocol version" (0x01 / 0x84).
        raise ProtocolViolation(
            f"protocol {name!r} level {level} is not MQTT 3.1.1 (4) or MQTT 5 (5)", 0x84
        )
    flags = r.byte()
    if flags & 0x01:
        raise MalformedPacket("CONNECT flags: the reserved bit is set")
    keep_alive = r.u16()
    props = r.properties() if level == MQTT_5 else []
    client_id = r.utf8()
    will: Will | None = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        will_props = r.properties() if level == MQTT_5 else []
        topic = r.utf8()
        if will_qos == 3:
            raise MalformedPacket("CONNECT flags: Will QoS is 3")
        will = Will(topic, r.binary(), will_qos, bool(flags & 0x20), will_props)
    elif will_qos or flags & 0x20:
        raise MalformedPacket("CONNECT flags: Will QoS or Will Retain set without a Will")
    username = r.utf8() if flags & 0x80 else None
    if flags & 0x40 and level == MQTT_311 and username is None:
        raise MalformedPacket("CONNECT flags: password without a user name (MQTT 3.1.1)")
    password = r.binary() if flags & 0x40 else None
    return Connect(
        client_id,
        level,
        bool(flags & 0x02),
        keep_alive,
        will,
        username,
        password,
        props,
        name,
    )


def _decode(kind: PacketType, flags: int, body: bytes, level: int) -> Packet:
    r = _Reader(body)
    v5 = level == MQTT_5
    packet: Packet
    if kind == PacketType.CONNECT:
        packet = _decode_connect(r)
    elif kind == PacketType.CONNACK:
        ack_flags = r.byte()
        packet = ConnAck(r.byte(), bool(ack_flags & 1), r.properties() if v5 else [])
    elif kind == PacketType.PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise MalformedPacket("PUBLISH with QoS 3")
        topic = r.utf8()
        packet_id = r.u16() if qos else None
        if packet_id == 0:
            raise MalformedPacket("PUBLISH with packet identifier 0")
        props = r.properties() if v5 else []
        packet = Publish(
            topic, r.take(r.remaining), qos, bool(flags & 1), bool(flags & 8), packet_id, props
        )
        return packet
    elif kind in (PacketType.PUBACK, PacketType.PUBREC, PacketType.PUBREL, PacketType.PUBCOMP):
        packet_id = r.u16()
        reason = r.byte() if v5 and r.remaining else 0
        props = r.properties() if v5 and r.remaining else []
        packet = PubAck(packet_id, reason, props, kind)
    elif kind == PacketType.SUBSCRIBE:
        packet_id = r.u16()
        props = r.properties() if v5 else []
        filters = []
        while r.remaining:
            topic_filter = r.utf8()
            options = r.byte()
            if options & (0xC0 if v5 else 0xFC) or options & 0x03 == 3 or (options >> 4) & 3 == 3:
                raise MalformedPacket(f"SUBSCRIBE options byte 0x{options:02X} is invalid")
            filters.append((topic_filter, options))
        if not filters:
            raise ProtocolViolation("SUBSCRIBE without a topic filter")
        packet = Subscribe(packet_id, filters, props)
    elif kind == PacketType.SUBACK:
        packet_id = r.u16()
        props = r.properties() if v5 else []
        packet = SubAck(packet_id, list(r.take(r.remaining)), props)
    elif kind == PacketType.UNSUBSCRIBE:
        packet_id = r.u16()
        props = r.properties() if v5 else []
        names = []
        while r.remaining:
            names.append(r.utf8())
        if not names:
            raise ProtocolViolation("UNSUBSCRIBE without a topic filter")
        packet = Unsubscribe(packet_id, names, props)
    elif kind == PacketType.UNSUBACK:
        packet_id = r.u16()
        props = r.properties() if v5 else []
        packet = UnsubAck(packet_id, list(r.take(r.remaining)) if v5 else [], props)
    elif kind == PacketType.PINGREQ:
        packet = PingReq()
    elif kind == PacketType.PINGRESP:
        packet = PingResp()
    elif kind == PacketType.DISCONNECT:
        reason = r.byte() if v5 and r.remaining else 0
        packet = Disconnect(reason, r.properties() if v5 and r.remaining else [])
    else:
        if not v5:
            raise MalformedPacket("AUTH is an MQTT 5 packet")
        reason = r.byte() if r.remaining else 0
        packet = Auth(reason, r.properties() if r.remaining else [])
    if r.remaining:
        raise MalformedPacket(f"{kind.name} has {r.remaining} unexpected trailing byte(s)")
    return packet


class PacketReader:
    """Splits a byte stream into packets.

    ``feed()`` bytes as they arrive and iterate :meth:`packets`. ``level`` is the protocol
    level the packets are decoded with (set it from the CONNECT); until it is set, only a
    CONNECT can be decoded. A packet's size is checked against ``max_packet_size`` from
    its fixed header, before its body is buffered.
    """

    def __init__(self, max_packet_size: int = _MAX_VARINT + 5, level: int | None = None) -> None:
        """Read packets of at most ``max_packet_size`` bytes (fixed header included)."""
        self.max_packet_size = max_packet_size
        self.level = level
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet decoded."""
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buffer += data

    def packets(self) -> Iterator[Packet]:
        """Decode every complete packet buffered so far, in order."""
        while True:
            packet = self._next()
            if packet is None:
                return
            yield packet

    def _next(self) -> Packet | None:
        buffer = self._buffer
        if not buffer:
            return None
        if self.level is None and buffer[0] >> 4 != PacketType.CONNECT:
            name = PacketType(buffer[0] >> 4).name if buffer[0] >> 4 else "reserved type 0"
            raise ProtocolViolation(f"the first packet must be CONNECT, not {name}")
        if len(buffer) < 2:
            return None
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(buffer):
                return None
            byte = buffer[index]
            length += (byte & 0x7F) * multiplier
            index += 1
            if not byte & 0x80:
                break
            if index > 4:
                raise MalformedPacket("remaining length longer than 4 bytes")
            multiplier *= 128
        total = index + length
        if total > self.max_packet_size:
            raise PacketTooLarge(total, self.max_packet_size)
        if len(buffer) < total:
            return None
        first = buffer[0]
        body = bytes(buffer[index:total])
        del buffer[:total]
        kind_value, flags = first >> 4, first & 0x0F
        if kind_value == 0:
            raise MalformedPacket("packet type 0 is reserved")
        kind = PacketType(kind_value)
        expected = _FIXED_FLAGS.get(kind, None if kind == PacketType.PUBLISH else 0)
        if expected is not None and flags != expected:
            raise MalformedPacket(f"{kind.name} with fixed-header flags 0b{flags:04b}")
        level = self.level if self.level is not None else MQTT_311
        return _decode(kind, flags, body, level)


# -- encoding ---------------------------------------------------------------------------


def _fixed(kind: PacketType, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def encode(packet: Packet, level: int = MQTT_311) -> bytes:
    """The bytes of ``packet`` for a connection at protocol ``level``."""
    v5 = level == MQTT_5
    if isinstance(packet, Publish):
        body = _utf8(packet.topic)
        if packet.qos:
            if not packet.packet_id:
                raise ValueError("a QoS 1 or 2 PUBLISH needs a packet identifier")
            body += packet.packet_id.to_bytes(2, "big")
        if v5:
            body += _properties(packet.properties)
        flags = packet.dup << 3 | packet.qos << 1 | packet.retain
        return _fixed(PacketType.PUBLISH, flags, body + packet.payload)
    if isinstance(packet, PubAck):
        body = packet.packet_id.to_bytes(2, "big")
        if v5 and (packet.reason or packet.properties):
            body += bytes([packet.reason])
            if packet.properties:
                body += _properties(packet.properties)
        flags = 0b0010 if packet.kind == PacketType.PUBREL else 0
        return _fixed(packet.kind, flags, body)
    if isinstance(packet, ConnAck):
        body = bytes([int(packet.session_present), packet.reason])
        if v5:
            body += _properties(packet.properties)
        return _fixed(PacketType.CONNACK, 0, body)
    if isinstance(packet, SubAck):
        body = packet.packet_id.to_bytes(2, "big")
        if v5:
            body += _properties(packet.properties)
        return _fixed(PacketType.SUBACK, 0, body + bytes(packet.reasons))
    if isinstance(packet, UnsubAck):
        body = packet.packet_id.to_bytes(2, "big")
        if v5:
            body += _properties(packet.properties) + bytes(packet.reasons)
        return _fixed(PacketType.UNSUBACK, 0, body)
    if isinstance(packet, PingReq):
        return _fixed(PacketType.PINGREQ, 0, b"")
    if isinstance(packet, PingResp):
        return _fixed(PacketType.PINGRESP, 0, b"")
    if isinstance(packet, Disconnect):
        body = b""
        if v5 and (packet.reason or packet.properties):
            body = bytes([packet.reason]) + _properties(packet.properties)
        return _fixed(PacketType.DISCONNECT, 0, body)
    if isinstance(packet, Auth):
        return _fixed(PacketType.AUTH, 0, bytes([packet.reason]) + _properties(packet.properties))
    if isinstance(packet, Subscribe):
        body = packet.packet_id.to_bytes(2, "big")
        if v5:
            body += _properties(packet.properties)
        for topic_filter, options in packet.filters:
            body += _utf8(topic_filter) + bytes([options])
        return _fixed(PacketType.SUBSCRIBE, 0b0010, body)
    if isinstance(packet, Unsubscribe):
        body = packet.packet_id.to_bytes(2, "big")
        if v5:
            body += _properties(packet.properties)
        for topic_filter in packet.filters:
            body += _utf8(topic_filter)
        return _fixed(PacketType.UNSUBSCRIBE, 0b0010, body)
    return _encode_connect(packet)


def _encode_connect(packet: Connect) -> bytes:
    v5 = packet.level == MQTT_5
    flags = 0
    if packet.clean_start:
        flags |= 0x02
    if packet.will is not None:
        flags |= 0x04 | packet.will.qos << 3 | packet.will.retain << 5
    if packet.password is not None:
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    body = _utf8(packet.protocol_name) + bytes([packet.level, flags])
    body += packet.keep_alive.to_bytes(2, "big")
    if v5:
        body += _properties(packet.properties)
    body += _utf8(packet.client_id)
    if packet.will is not None:
        if v5:
            body += _properties(packet.will.properties)
        body += _utf8(packet.will.topic) + _binary(packet.will.payload)
    if packet.username is not None:
        body += _utf8(packet.username)
    if packet.password is not None:
        body += _binary(packet.password)
    return _fixed(PacketType.CONNECT, 0, body)
