"""Length-prefixed frames: encoding limits and reassembly however the stream is cut."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies_protocol import noisy_chunks, tunnel_messages

from pytest_securetunnel.protocol import (
    MAX_PAYLOAD_SIZE,
    FrameDecoder,
    FrameError,
    MessageDecodeError,
    MessageType,
    ProtocolError,
    RuleViolation,
    TunnelMessage,
    UnknownFieldError,
    encode_frame,
    encode_message,
)
from pytest_securetunnel.protocol._framing import MAX_MESSAGE_SIZE

MESSAGES = [
    TunnelMessage.service_ids(["SSH", "VNC"]),
    TunnelMessage.stream_start(1, "SSH", 1),
    TunnelMessage.data(1, b"hello world", "SSH", 1),
    TunnelMessage.data(1, bytes(range(256)) * 3, "SSH", 1),
    TunnelMessage.connection_reset(1, 1, "SSH"),
    TunnelMessage(MessageType.UNKNOWN),
    TunnelMessage.stream_reset(1, "SSH"),
]
STREAM = b"".join(encode_frame(m) for m in MESSAGES)


def test_encode_frame_exact_bytes() -> None:
    assert encode_frame(TunnelMessage.data(1, b"hello", "SSH", 1)) == (
        b'\x00\x12\x08\x01\x10\x01"\x05hello*\x03SSH8\x01'
    )


def test_encode_frame_empty_message() -> None:
    assert encode_frame(TunnelMessage(MessageType.UNKNOWN)) == b"\x00\x00"


def test_encode_frame_prefix_is_big_endian_length() -> None:
    frame = encode_frame(TunnelMessage.data(7, b"x" * 300))
    assert (
        frame[:2] == (len(frame) - 2).to_bytes(2, "big") == b"\x01\x33"
    )  # 307 = 2 + 2 + 1 + 2 + 300


def test_payload_at_limit_encodes() -> None:
    frame = encode_frame(TunnelMessage.data(1, b"\x00" * MAX_PAYLOAD_SIZE))
    assert FrameDecoder().feed(frame) == [TunnelMessage.data(1, b"\x00" * MAX_PAYLOAD_SIZE)]


def test_payload_too_large_rule() -> None:
    message = TunnelMessage.data(1, b"\x00" * (MAX_PAYLOAD_SIZE + 1))
    with pytest.raises(RuleViolation) as info:
        encode_frame(message)
    assert info.value.rule == "payload-too-large"
    assert info.value.value == MAX_PAYLOAD_SIZE + 1
    assert str(info.value) == (
        "rule payload-too-large: DATA payload is 64513 bytes; the limit is 64512 bytes "
        "(63 KiB) (source: protocol guides V1-V3, 'Tunneling message frames')"
    )


def test_payload_limit_can_be_skipped_to_craft_invalid_traffic() -> None:
    message = TunnelMessage.data(1, b"\x00" * (MAX_PAYLOAD_SIZE + 1))
    frame = encode_frame(message, enforce_payload_limit=False)
    assert FrameDecoder().feed(frame) == [message]


def test_frame_too_large_rule() -> None:
    message = TunnelMessage.data(1, b"\x00" * MAX_PAYLOAD_SIZE, service_id="S" * 1100)
    size = len(encode_message(message))
    assert size > MAX_MESSAGE_SIZE
    with pytest.raises(FrameError) as info:
        encode_frame(message)
    assert info.value.rule == "frame-too-large"
    assert info.value.value == size
    assert f"serialises to {size} bytes; a 2-byte length prefix allows at most 65535" in str(
        info.value
    )


def test_largest_frame_that_fits() -> None:
    filler = MAX_MESSAGE_SIZE - len(encode_message(TunnelMessage.data(1, b"\x00" * 64512)))
    message = TunnelMessage.data(1, b"\x00" * 64512, service_id="S" * (filler - 3))
    frame = encode_frame(message)
    assert len(frame) == MAX_MESSAGE_SIZE + 2
    assert FrameDecoder().feed(frame) == [message]


def test_decoder_whole_stream_at_once() -> None:
    assert FrameDecoder().feed(STREAM) == MESSAGES


def test_decoder_every_split_point() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = FrameDecoder()
        assert decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) == MESSAGES, cut
        assert decoder.buffered == 0


def test_decoder_every_pair_of_split_points_in_a_short_stream() -> None:
    stream = b"".join(encode_frame(m) for m in MESSAGES[:3])
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            decoder = FrameDecoder()
            out = decoder.feed(stream[:first])
            out += decoder.feed(stream[first:second])
            out += decoder.feed(stream[second:])
            assert out == MESSAGES[:3], (first, second)


def test_decoder_byte_by_byte() -> None:
    decoder = FrameDecoder()
    out: list[TunnelMessage] = []
    for index in range(len(STREAM)):
        out += decoder.feed(STREAM[index : index + 1])
    assert out == MESSAGES


def test_decoder_reports_buffered_partial_frame() -> None:
    decoder = FrameDecoder()
    frame = encode_frame(MESSAGES[2])
    assert decoder.feed(frame[:1]) == []
    assert decoder.buffered == 1
    assert decoder.feed(frame[1:-1]) == []
    assert decoder.buffered == len(frame) - 1
    assert decoder.feed(frame[-1:]) == [MESSAGES[2]]
    assert decoder.buffered == 0


def test_decoder_next_message_pull_api() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(STREAM)
    pulled = []
    while (message := decoder.next_message()) is not None:
        pulled.append(message)
    assert pulled == MESSAGES


def test_decoder_error_keeps_earlier_messages_and_stays_aligned() -> None:
    good = encode_frame(MESSAGES[1])
    bad_body = b"\x22\x05ab"  # payload field claims 5 bytes, has 2
    bad = len(bad_body).to_bytes(2, "big") + bad_body
    decoder = FrameDecoder()
    with pytest.raises(MessageDecodeError) as info:
        decoder.feed(good + bad + good)
    assert info.value.rule == "malformed-message"
    assert info.value.accepted == (MESSAGES[1],)
    assert decoder.feed(b"") == [MESSAGES[1]]


def test_decoder_rejects_unknown_fields_by_default() -> None:
    body = encode_message(MESSAGES[1]) + b"\x40\x01"
    frame = len(body).to_bytes(2, "big") + body
    with pytest.raises(UnknownFieldError):
        FrameDecoder().feed(frame)
    assert FrameDecoder(allow_unknown_fields=True).feed(frame) == [MESSAGES[1]]


@given(
    st.lists(tunnel_messages(), max_size=6),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
)
def test_arbitrary_chunking_decodes_same_messages(
    messages: list[TunnelMessage], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    points = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder()
    out: list[TunnelMessage] = []
    for start, end in itertools.pairwise(points):
        out += decoder.feed(stream[start:end])
    assert out == messages
    assert decoder.buffered == 0


@settings(max_examples=300)
@given(noisy_chunks)
def test_arbitrary_bytes_raise_only_protocol_errors(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        with contextlib.suppress(ProtocolError):
            decoder.feed(chunk)
        while True:
            try:
                decoder.feed(b"")
                break
            except ProtocolError:
                continue
