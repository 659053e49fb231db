"""Tunneling messages, conversations, frame streams and named malformed frames."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from hypothesis import strategies as st

from pytest_securetunnel.protocol import (
    MAX_PAYLOAD_SIZE,
    RULES,
    ClientMode,
    MessageType,
    ProtocolVersion,
    TunnelMessage,
    encode_frame,
    encode_message,
)

__all__ = [
    "MALFORMED_RULES",
    "MalformedFrame",
    "byte_chunks",
    "frame_streams",
    "malformed_frames",
    "message_sequences",
    "tunnel_messages",
]

_INT32_MAX = 2**31 - 1
_UINT32_MAX = 2**32 - 1
_FIRST_UNKNOWN_TYPE = max(MessageType) + 1
_SERVICE_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-"

Sender = tuple[ClientMode, TunnelMessage]

_stream_ids = st.integers(1, _INT32_MAX)


def _payloads(max_size: int = MAX_PAYLOAD_SIZE) -> st.SearchStrategy[bytes]:
    """Payloads up to ``max_size`` bytes: mostly small, sometimes exactly the limit."""
    fullest = st.binary(min_size=1, max_size=16).map(
        lambda seed: (seed * (max_size // len(seed) + 1))[:max_size]
    )

    @st.composite
    def payloads(draw: st.DrawFn) -> bytes:
        if draw(st.integers(0, 9)) == 9:
            return draw(fullest)
        return draw(st.binary(max_size=min(max_size, 512)))

    return payloads()


def _unknown_types() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(_FIRST_UNKNOWN_TYPE, _INT32_MAX), st.integers(-(2**31), -1))


def _service_keys(version: ProtocolVersion, services: Sequence[str]) -> list[str]:
    """Service ids a message may carry: none in V1; the tunnel's, or none, in V2/V3."""
    if not version.has_service_ids:
        return [""]
    return [*services, ""]


def _version(version: ProtocolVersion | int) -> ProtocolVersion:
    return ProtocolVersion(version)


def tunnel_messages(
    version: ProtocolVersion | int = ProtocolVersion.V3,
    mode: ClientMode | str = ClientMode.SOURCE,
    services: Iterable[str] = (),
) -> st.SearchStrategy[TunnelMessage]:
    """Single messages a client of ``mode`` may send with protocol ``version``.

    Types, fields, stream ids, service ids and payload sizes follow the version's rules
    (``services`` are the tunnel's service ids). DATA and CONNECTION_START are valid once
    their stream has started (for a destination: once the source's STREAM_START was
    relayed to it); use :func:`message_sequences` for whole valid conversations::

        from hypothesis import given
        from pytest_securetunnel.protocol import encode_frame, decode_message
        from pytest_securetunnel.strategies import tunnel_messages

        @given(tunnel_messages(version=2, services=("SSH",)))
        def test_round_trip(message):
            assert decode_message(encode_frame(message)[2:]) == message
    """
    version = _version(version)
    mode = ClientMode(mode)
    keys = _service_keys(version, tuple(services))
    v3 = version.has_connection_ids
    connections = st.integers(1, _UINT32_MAX) if v3 else st.just(0)
    kinds = [MessageType.DATA, MessageType.STREAM_RESET]
    if mode is ClientMode.SOURCE:
        kinds.append(MessageType.STREAM_START)
    if v3:
        kinds.append(MessageType.CONNECTION_RESET)
        if mode is ClientMode.SOURCE:
            kinds.append(MessageType.CONNECTION_START)

    @st.composite
    def messages(draw: st.DrawFn) -> TunnelMessage:
        kind: MessageType | int
        if draw(st.integers(0, 7)) == 7:
            kind = draw(_unknown_types())
            return TunnelMessage(
                kind,
                stream_id=draw(st.integers(0, _INT32_MAX)),
                ignorable=True,
                payload=draw(_payloads()),
                service_id=draw(st.sampled_from(keys)),
                connection_id=draw(connections) if draw(st.booleans()) else 0,
            )
        kind = draw(st.sampled_from(kinds))
        connection_id = 0
        if kind == MessageType.STREAM_START:
            connection_id = 1 if v3 else 0
        elif v3 and kind != MessageType.STREAM_RESET:
            connection_id = draw(connections)
        return TunnelMessage(
            kind,
            stream_id=draw(_stream_ids),
            ignorable=draw(st.booleans()),
            payload=draw(_payloads()) if kind == MessageType.DATA else b"",
            service_id=draw(st.sampled_from(keys)),
            connection_id=connection_id,
        )

    return messages()


@dataclass
class _Stream:
    stream_id: int
    connections: set[int] = field(default_factory=lambda: {1})
    next_connection: int = 2


@st.composite
def _conversation(
    draw: st.DrawFn, version: ProtocolVersion, services: tuple[str, ...], max_steps: int
) -> list[Sender]:
    v3 = version.has_connection_ids
    if version.has_service_ids and services and draw(st.integers(0, 5)) != 0:
        keys = list(services)
    else:
        keys = [""]
    active: dict[str, _Stream] = {}
    last: dict[str, int] = {}
    out: list[Sender] = []
    source, destination = ClientMode.SOURCE, ClientMode.DESTINATION

    def start(key: str) -> None:
        stream_id = last.get(key, draw(st.integers(0, 1000))) + draw(st.integers(1, 3))
        if stream_id > _INT32_MAX:
            return
        last[key] = stream_id
        active[key] = _Stream(stream_id)
        out.append((source, TunnelMessage.stream_start(stream_id, key, 1 if v3 else 0)))

    start(draw(st.sampled_from(keys)))
    for _ in range(draw(st.integers(0, max_steps))):
        actions = ["start", "ignorable"]
        if active:
            actions += ["data", "data", "data", "reset"]
            if v3:
                actions += ["connection-start", "connection-reset"]
        action = draw(st.sampled_from(actions))
        sender = draw(st.sampled_from([source, destination]))
        if action == "start":
            start(draw(st.sampled_from(keys)))
            continue
        if action == "ignorable":
            message = TunnelMessage(
                draw(_unknown_types()),
                stream_id=draw(st.integers(0, _INT32_MAX)),
                ignorable=True,
                payload=draw(st.binary(max_size=32)),
                service_id=draw(st.sampled_from(keys)),
            )
            out.append((sender, message))
            continue
        key = draw(st.sampled_from(sorted(active)))
        stream = active[key]
        if action == "data":
            connection = draw(st.sampled_from(sorted(stream.connections))) if v3 else 0
            payload = draw(_payloads())
            out.append((sender, TunnelMessage.data(stream.stream_id, payload, key, connection)))
        elif action == "reset":
            del active[key]
            out.append((sender, TunnelMessage.stream_reset(stream.stream_id, key)))
        elif action == "connection-start":
            connection = stream.next_connection
            stream.next_connection += 1
            stream.connections.add(connection)
            message = TunnelMessage.connection_start(stream.stream_id, connection, key)
            out.append((source, message))
        elif len(stream.connections) > 1:
            connection = draw(st.sampled_from(sorted(stream.connections)))
            stream.connections.discard(connection)
            message = TunnelMessage.connection_reset(stream.stream_id, connection, key)
            out.append((sender, message))
    return out


def message_sequences(
    version: ProtocolVersion | int = ProtocolVersion.V3,
    services: Iterable[str] = (),
    *,
    max_steps: int = 12,
) -> st.SearchStrategy[list[tuple[ClientMode, TunnelMessage]]]:
    """Valid conversations over one tunnel: ``(sender, message)`` pairs in order.

    The source starts a stream first; then both clients send data, streams are reset
    and restarted, V3 connections are opened and closed, and ignorable messages of
    unknown types appear. Every message is valid for its sender when the service
    relays each message to the other client::

        from hypothesis import given
        from pytest_securetunnel.protocol import ClientMode, TunnelConnection, encode_frame
        from pytest_securetunnel.strategies import message_sequences

        @given(message_sequences(version=3, services=("SSH", "RDP")))
        def test_relay(conversation):
            clients = {m: TunnelConnection(m, 3, ("SSH", "RDP")) for m in ClientMode}
            for sender, message in conversation:
                assert clients[sender].receive_data(encode_frame(message)) == [message]
                peer = next(m for m in ClientMode if m is not sender)
                clients[peer].note_sent(message)
    """
    return _conversation(_version(version), tuple(services), max_steps)


def byte_chunks(data: bytes, *, max_chunks: int = 16) -> st.SearchStrategy[list[bytes]]:
    """Ways to cut ``data`` into non-empty consecutive chunks (joined, they are ``data``).

    Use it to feed a decoder the way a WebSocket layer may cut a stream::

        @given(st.data())
        def test_any_cut(data):
            chunks = data.draw(byte_chunks(encode_frame(TunnelMessage.data(1, b"x"))))
    """
    if len(data) < 2:
        return st.just([data] if data else [])
    cuts = st.lists(
        st.integers(1, len(data) - 1), max_size=min(max_chunks - 1, len(data) - 1), unique=True
    )
    return cuts.map(lambda points: _cut(data, sorted(points)))


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@st.composite
def _framed(
    draw: st.DrawFn, messages: st.SearchStrategy[Sequence[TunnelMessage]], max_chunks: int
) -> tuple[list[TunnelMessage], list[bytes]]:
    chosen = list(draw(messages))
    stream = b"".join(encode_frame(message) for message in chosen)
    return chosen, draw(byte_chunks(stream, max_chunks=max_chunks))


def frame_streams(
    messages: st.SearchStrategy[Sequence[TunnelMessage]] | None = None,
    *,
    version: ProtocolVersion | int = ProtocolVersion.V3,
    services: Iterable[str] = (),
    max_chunks: int = 16,
) -> st.SearchStrategy[tuple[list[TunnelMessage], list[bytes]]]:
    """``(messages, chunks)``: messages as a byte stream of frames, cut anywhere.

    By default the messages are what a source client sends in a
    :func:`message_sequences` conversation, so the whole stream is valid for a source
    :class:`~pytest_securetunnel.protocol.TunnelConnection`::

        @given(frame_streams(version=2))
        def test_reassembly(stream):
            messages, chunks = stream
            decoder = FrameDecoder()
            assert [m for chunk in chunks for m in decoder.feed(chunk)] == messages
    """
    if messages is None:
        conversation = message_sequences(version, services)
        messages = conversation.map(
            lambda pairs: [m for sender, m in pairs if sender is ClientMode.SOURCE]
        )
    return _framed(messages, max_chunks)


# -- malformed frames ----------------------------------------------------------------


@dataclass(frozen=True)
class MalformedFrame:
    """Bytes a client sends that break one named protocol rule.

    Feed :attr:`data` to ``TunnelConnection(mode, version, services)``: the frames of
    :attr:`accepted` are valid and come first, then the frame that raises a
    :class:`~pytest_securetunnel.protocol.ProtocolError` whose ``rule`` is :attr:`rule`.
    """

    data: bytes
    rule: str
    version: ProtocolVersion
    mode: ClientMode
    services: tuple[str, ...] = ()
    accepted: tuple[TunnelMessage, ...] = ()


#: Rule ids :func:`malformed_frames` can break: every rule of the protocol's catalogue
#: (:data:`pytest_securetunnel.protocol.RULES`), in the order they are checked.
MALFORMED_RULES = tuple(rule.id for rule in RULES)
_RULES_BY_ID = {rule.id: rule for rule in RULES}


def _applies(rule: str, version: ProtocolVersion, mode: ClientMode, services: bool) -> bool:
    if not _RULES_BY_ID[rule].applies(version, mode):
        return False
    # Breaking it takes a stream started with a service id and one without.
    return services or rule != "service-id-after-empty-stream"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _frame(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


@st.composite
def _bad_frame(
    draw: st.DrawFn,
    rule: str,
    version: ProtocolVersion,
    mode: ClientMode,
    services: tuple[str, ...],
) -> tuple[bytes, tuple[TunnelMessage, ...]]:
    keys = _service_keys(version, services)
    key = draw(st.sampled_from(keys))
    stream = draw(_stream_ids)
    prefix: tuple[TunnelMessage, ...] = ()
    message: TunnelMessage | None = None
    if rule == "type-zero":
        message = TunnelMessage(MessageType.UNKNOWN, stream_id=stream, service_id=key)
    elif rule == "type-unknown":
        message = TunnelMessage(draw(_unknown_types()), stream_id=stream, service_id=key)
    elif rule == "session-reset-from-client":
        message = TunnelMessage.session_reset()
    elif rule == "service-ids-from-client":
        message = TunnelMessage.service_ids(draw(st.lists(st.sampled_from(keys), max_size=3)))
    elif rule == "type-not-in-version":
        kind = draw(st.sampled_from([MessageType.CONNECTION_START, MessageType.CONNECTION_RESET]))
        message = TunnelMessage(kind, stream_id=stream, service_id=key)
    elif rule == "stream-start-from-destination":
        message = TunnelMessage.stream_start(stream, key, 1 if version.has_connection_ids else 0)
    elif rule == "field-not-in-version":
        kind = draw(st.sampled_from([MessageType.DATA, MessageType.STREAM_RESET]))
        if version.has_service_ids:
            message = TunnelMessage(
                kind, stream_id=stream, connection_id=draw(st.integers(1, _UINT32_MAX))
            )
        else:
            service = draw(st.text(_SERVICE_ALPHABET, min_size=1, max_size=8))
            message = TunnelMessage(kind, stream_id=stream, service_id=service)
    elif rule == "stream-id-zero":
        kinds = [MessageType.DATA, MessageType.STREAM_RESET]
        if mode is ClientMode.SOURCE:
            kinds.append(MessageType.STREAM_START)
        message = TunnelMessage(draw(st.sampled_from(kinds)), stream_id=0, service_id=key)
    elif rule == "payload-too-large":
        size = draw(st.integers(MAX_PAYLOAD_SIZE + 1, MAX_PAYLOAD_SIZE + 512))
        payload = draw(st.binary(min_size=1, max_size=8))
        payload = (payload * (size // len(payload) + 1))[:size]
        message = TunnelMessage.data(stream, payload, key)
    elif rule == "service-id-unknown":
        unknown = st.text(_SERVICE_ALPHABET, min_size=1, max_size=16).filter(
            lambda s: s not in services
        )
        message = TunnelMessage.stream_reset(stream, draw(unknown))
    elif rule == "service-id-after-empty-stream":
        v3 = version.has_connection_ids
        prefix = (TunnelMessage.stream_start(stream, "", 1 if v3 else 0),)
        kind = draw(st.sampled_from([MessageType.STREAM_START, MessageType.STREAM_RESET]))
        connection = 1 if v3 and kind == MessageType.STREAM_START else 0
        message = TunnelMessage(
            kind,
            stream_id=draw(_stream_ids),
            service_id=draw(st.sampled_from(services)),
            connection_id=connection,
        )
    elif rule == "data-before-stream-start":
        message = TunnelMessage.data(stream, draw(st.binary(max_size=64)), key)
    elif rule == "connection-start-without-stream":
        if mode is ClientMode.SOURCE and draw(st.booleans()):
            prefix = (TunnelMessage.stream_start(stream, key, 1),)
            other = draw(_stream_ids.filter(lambda s: s != stream))
        else:
            other = stream
        message = TunnelMessage.connection_start(other, draw(st.integers(1, 9)), key)
    if message is not None:
        bad = encode_frame(message, enforce_payload_limit=False)
    elif rule == "unknown-field":
        valid = TunnelMessage.stream_reset(stream, key)
        number = draw(st.integers(8, 2**29 - 1))
        if draw(st.booleans()):
            extra = _varint(number << 3) + _varint(draw(st.integers(0, 2**32)))
        else:
            data = draw(st.binary(max_size=16))
            extra = _varint((number << 3) | 2) + _varint(len(data)) + data
        bad = _frame(encode_message(valid) + extra)
    else:
        declared = draw(st.integers(2, 100))
        data = draw(st.binary(max_size=declared - 1))
        bad = _frame(b"\x22" + _varint(declared) + data)
    ignorables = draw(st.lists(st.builds(_ignorable, _unknown_types()), max_size=2))
    prefix = (*ignorables, *prefix)
    return b"".join(encode_frame(m) for m in prefix) + bad, prefix


def _ignorable(kind: int) -> TunnelMessage:
    return TunnelMessage(kind, stream_id=1, ignorable=True)


def malformed_frames(
    version: ProtocolVersion | int | None = None,
    mode: ClientMode | str | None = None,
    services: Iterable[str] | None = None,
    *,
    rules: Collection[str] | None = None,
) -> st.SearchStrategy[MalformedFrame]:
    """Byte streams that break one named protocol rule (see :data:`MALFORMED_RULES`).

    ``version``, ``mode`` and ``services`` fix the connection; left out, they are drawn
    too. ``rules`` limits the rules broken. Each example says which rule the service's
    :class:`~pytest_securetunnel.protocol.TunnelConnection` must report::

        from hypothesis import given
        from pytest_securetunnel.protocol import ProtocolError, TunnelConnection
        from pytest_securetunnel.strategies import malformed_frames

        @given(malformed_frames(rules={"stream-id-zero", "unknown-field"}))
        def test_named_rule(bad):
            connection = TunnelConnection(bad.mode, bad.version, bad.services)
            with pytest.raises(ProtocolError) as info:
                connection.receive_data(bad.data)
            assert info.value.rule == bad.rule
    """
    wanted = tuple(MALFORMED_RULES if rules is None else rules)
    unknown = sorted(set(wanted) - set(MALFORMED_RULES))
    if unknown:
        raise ValueError(f"unknown rules {unknown}; known: {', '.join(MALFORMED_RULES)}")
    versions = list(ProtocolVersion) if version is None else [_version(version)]
    modes = list(ClientMode) if mode is None else [ClientMode(mode)]
    given_services = None if services is None else tuple(services)
    can_have_services = given_services is None or bool(given_services)
    if not any(
        _applies(rule, v, m, can_have_services) for rule in wanted for v in versions for m in modes
    ):
        raise ValueError(f"none of the rules {sorted(wanted)} can be broken in that setting")
    service_lists = st.lists(
        st.text(_SERVICE_ALPHABET, min_size=1, max_size=12), max_size=3, unique=True
    )

    @st.composite
    def frames(draw: st.DrawFn) -> MalformedFrame:
        chosen_version = draw(st.sampled_from(versions))
        chosen_mode = draw(st.sampled_from(modes))
        tunnel_services = tuple(draw(service_lists)) if given_services is None else given_services
        candidates = [
            rule
            for rule in wanted
            if _applies(rule, chosen_version, chosen_mode, bool(tunnel_services))
        ]
        rule = draw(st.sampled_from(candidates)) if candidates else draw(st.nothing())
        data, accepted = draw(_bad_frame(rule, chosen_version, chosen_mode, tunnel_services))
        return MalformedFrame(data, rule, chosen_version, chosen_mode, tunnel_services, accepted)

    return frames()
