"""Hypothesis strategies for tunneling messages, shared by the protocol tests."""

from __future__ import annotations

from hypothesis import strategies as st

from pytest_securetunnel.protocol import MAX_PAYLOAD_SIZE, MessageType, TunnelMessage

int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)
service_ids = st.text(st.characters(codec="utf-8"), max_size=12)
message_types = st.one_of(st.sampled_from(MessageType), int32)


@st.composite
def tunnel_messages(draw: st.DrawFn, max_payload: int = 200) -> TunnelMessage:
    """Any message the schema can hold, payloads kept small for speed."""
    return TunnelMessage(
        type=draw(message_types),
        stream_id=draw(int32),
        ignorable=draw(st.booleans()),
        payload=draw(st.binary(max_size=min(max_payload, MAX_PAYLOAD_SIZE))),
        service_id=draw(service_ids),
        available_service_ids=tuple(draw(st.lists(service_ids, max_size=3))),
        connection_id=draw(uint32),
    )


def _field(parts: tuple[int, int, bytes]) -> bytes:
    number, wire_type, data = parts
    return bytes([((number << 3) | wire_type) & 0x7F, len(data)]) + data


#: Frame bodies made of protobuf-looking pieces (a tag, a length, bytes) and noise, which
#: reach deeper into the decoder than uniform random bytes.
protobuf_ish = st.lists(
    st.one_of(
        st.binary(max_size=8),
        st.tuples(
            st.integers(min_value=0, max_value=15),
            st.integers(min_value=0, max_value=7),
            st.binary(max_size=6),
        ).map(_field),
    ),
    max_size=8,
).map(b"".join)

#: Length-prefixed ``protobuf_ish`` frames, or raw noise.
noisy_chunks = st.lists(
    st.one_of(protobuf_ish.map(lambda b: len(b).to_bytes(2, "big") + b), st.binary(max_size=40)),
    max_size=8,
)
