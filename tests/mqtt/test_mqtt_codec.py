"""The sans-I/O packet codec: every packet type round-trips, bad bytes name the rule."""

from __future__ import annotations

import pytest

from pytest_securetunnel.mqtt._codec import (
    MQTT_5,
    MQTT_311,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    PacketReader,
    PacketTooLarge,
    PacketType,
    PingReq,
    PingResp,
    ProtocolViolation,
    PubAck,
    Publish,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    Will,
    encode,
    topic_matches,
    validate_filter,
)

PACKETS: list[Packet] = [
    Publish("a/b", b"payload", 1, True, False, 7),
    Publish("a/b", b"", 0),
    PubAck(7),
    PubAck(8, kind=PacketType.PUBREL),
    Subscribe(3, [("a/+", 1), ("b/#", 0)]),
    SubAck(3, [1, 0x80]),
    Unsubscribe(4, ["a/+"]),
    PingReq(),
    PingResp(),
    Disconnect(),
]


def decode_one(data: bytes, level: int) -> Packet:
    reader = PacketReader(level=level)
    reader.feed(data)
    packets = list(reader.packets())
    assert len(packets) == 1 and reader.buffered == 0
    return packets[0]


@pytest.mark.parametrize("packet", PACKETS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("level", [MQTT_311, MQTT_5], ids=["mqtt311", "mqtt5"])
def test_round_trip(packet: Packet, level: int) -> None:
    assert decode_one(encode(packet, level), level) == packet


def test_mqtt5_properties_and_reason_codes_round_trip() -> None:
    props = [
        (0x01, 1),
        (0x02, 60),
        (0x03, "application/json"),
        (0x26, ("k", "v")),
        (0x26, ("k", "w")),
    ]
    for packet in [
        Publish("t", b"x", 1, packet_id=2, properties=props),
        PubAck(2, 0x87, [(0x1F, "Not authorized")]),
        ConnAck(0, True, [(0x24, 1), (0x27, 131072), (0x12, "assigned")]),
        SubAck(5, [0x87], [(0x1F, "no")]),
        UnsubAck(6, [0x00, 0x11]),
        Disconnect(0x8E, [(0x1F, "taken over")]),
        Auth(0x18, [(0x15, "SCRAM")]),
    ]:
        assert decode_one(encode(packet, MQTT_5), MQTT_5) == packet


@pytest.mark.parametrize("level", [MQTT_311, MQTT_5])
def test_connect_round_trips_from_the_first_byte(level: int) -> None:
    connect = Connect(
        "robot-1",
        level,
        False,
        30,
        Will("last/words", b"bye", 1, True, [(0x01, 1)] if level == MQTT_5 else []),
        "user",
        b"secret",
        [(0x11, 3600)] if level == MQTT_5 else [],
    )
    assert decode_one(encode(connect), None) == connect  # type: ignore[arg-type]


def test_packets_split_anywhere_are_reassembled() -> None:
    data = b"".join(encode(p, MQTT_311) for p in PACKETS)
    reader = PacketReader(level=MQTT_311)
    decoded: list[Packet] = []
    for index in range(len(data)):
        reader.feed(data[index : index + 1])
        decoded.extend(reader.packets())
    assert decoded == PACKETS


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"\x30\x02\x00\x05", MalformedPacket, "ends 5 byte"),
        (b"\x36\x03\x00\x01a", MalformedPacket, "QoS 3"),
        (b"\x32\x05\x00\x01a\x00\x00", MalformedPacket, "packet identifier 0"),
        (b"\x80\x00", MalformedPacket, "SUBSCRIBE with fixed-header flags 0b0000"),
        (b"\x82\x02\x00\x01", ProtocolViolation, "SUBSCRIBE without a topic filter"),
        (b"\x82\x06\x00\x01\x00\x01a\x03", MalformedPacket, "options byte 0x03"),
        (b"\x30\x04\x00\x02\xff\xfe", MalformedPacket, "not valid UTF-8"),
        (b"\x30\x04\x00\x02a\x00", MalformedPacket, "U\\+0000"),
        (b"\xc0\x01\x00", MalformedPacket, "1 unexpected trailing byte"),
        (b"\xf0\x00", MalformedPacket, "AUTH is an MQTT 5 packet"),
    ],
)
def test_malformed_bytes_name_the_rule(data: bytes, error: type, message: str) -> None:
    reader = PacketReader(level=MQTT_311)
    reader.feed(data)
    with pytest.raises(error, match=message):
        list(reader.packets())


def test_unknown_property_and_size_limit() -> None:
    reader = PacketReader(level=MQTT_5)
    reader.feed(b"\x30\x06\x00\x01a\x02\x7f\x00")
    with pytest.raises(MalformedPacket, match="unknown property identifier 0x7F"):
        list(reader.packets())
    small = PacketReader(max_packet_size=10, level=MQTT_311)
    small.feed(b"\x30\x09")
    with pytest.raises(PacketTooLarge, match="11 bytes exceeds the maximum packet size of 10"):
        list(small.packets())


def test_first_packet_must_be_connect_from_its_first_byte() -> None:
    reader = PacketReader()
    reader.feed(b"\x82")
    with pytest.raises(ProtocolViolation, match="first packet must be CONNECT, not SUBSCRIBE"):
        list(reader.packets())


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a/b/c", True),
        ("a/#", "a", False),  # AWS IoT Core: the parent level is not matched
        ("a/#", "a/", True),
        ("#", "$aws/things/x/tunnels/notify", False),
        ("+/things/x/tunnels/notify", "$aws/things/x/tunnels/notify", False),
        ("$aws/things/+/tunnels/notify", "$aws/things/x/tunnels/notify", True),
    ],
)
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b"])
def test_invalid_filters(bad: str) -> None:
    with pytest.raises(ProtocolViolation):
        validate_filter(bad)
