"""Protocol strategies: valid messages pass the connection rules, malformed ones break theirs."""

from __future__ import annotations

import inspect
import re

import pytest
from helpers_strategies import FEW, SOME
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_securetunnel.protocol import (
    ClientMode,
    FrameDecoder,
    MessageType,
    ProtocolError,
    ProtocolVersion,
    TunnelConnection,
    TunnelMessage,
    encode_frame,
)
from pytest_securetunnel.protocol._rules import MESSAGE_RULES
from pytest_securetunnel.strategies import (
    MALFORMED_RULES,
    MalformedFrame,
    byte_chunks,
    frame_streams,
    malformed_frames,
    message_sequences,
    tunnel_messages,
)

SETTINGS = [(version, mode) for version in ProtocolVersion for mode in ClientMode]
service_lists = st.lists(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8),
    max_size=3,
    unique=True,
).map(tuple)


def _peer(mode: ClientMode) -> ClientMode:
    return ClientMode.DESTINATION if mode is ClientMode.SOURCE else ClientMode.SOURCE


@pytest.mark.parametrize(("version", "mode"), SETTINGS)
@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_tunnel_messages_pass_the_rules(
    version: ProtocolVersion, mode: ClientMode, data: st.DataObject
) -> None:
    services = data.draw(service_lists, label="services")
    message = data.draw(tunnel_messages(version, mode, services), label="message")
    connection = TunnelConnection(mode, version, services)
    if message.type in (MessageType.DATA, MessageType.CONNECTION_START):
        start = TunnelMessage.stream_start(
            message.stream_id, message.service_id, 1 if version.has_connection_ids else 0
        )
        if mode is ClientMode.SOURCE:
            connection.receive_data(encode_frame(start))
        else:
            connection.note_sent(start)
    assert connection.receive_data(encode_frame(message)) == [message]


@pytest.mark.parametrize("version", list(ProtocolVersion))
@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_conversations_are_valid_for_both_clients(
    version: ProtocolVersion, data: st.DataObject
) -> None:
    services = data.draw(service_lists, label="services")
    conversation = data.draw(message_sequences(version, services), label="conversation")
    first_sender, first = conversation[0]
    assert first_sender is ClientMode.SOURCE
    assert first.type == MessageType.STREAM_START
    clients = {mode: TunnelConnection(mode, version, services) for mode in ClientMode}
    for sender, message in conversation:
        assert clients[sender].receive_data(encode_frame(message)) == [message]
        clients[_peer(sender)].note_sent(message)


@pytest.mark.parametrize("version", list(ProtocolVersion))
@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_frame_streams_reassemble_however_cut(
    version: ProtocolVersion, data: st.DataObject
) -> None:
    services = data.draw(service_lists, label="services")
    messages, chunks = data.draw(frame_streams(version=version, services=services))
    assert all(chunks)
    decoder = FrameDecoder()
    assert [m for chunk in chunks for m in decoder.feed(chunk)] == messages
    assert decoder.buffered == 0
    source = TunnelConnection(ClientMode.SOURCE, version, services)
    assert [m for chunk in chunks for m in source.receive_data(chunk)] == messages


@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_frame_streams_of_given_messages(data: st.DataObject) -> None:
    messages = st.lists(tunnel_messages(ProtocolVersion.V1), max_size=4)
    chosen, chunks = data.draw(frame_streams(messages, max_chunks=3))
    assert len(chunks) <= 3
    assert b"".join(chunks) == b"".join(encode_frame(m) for m in chosen)


@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_byte_chunks_join_to_the_data(data: st.DataObject) -> None:
    raw = data.draw(st.binary(max_size=40))
    chunks = data.draw(byte_chunks(raw, max_chunks=5))
    assert b"".join(chunks) == raw
    assert all(chunks)
    assert len(chunks) <= 5


@pytest.mark.parametrize("rule", MALFORMED_RULES)
@settings(max_examples=FEW, deadline=None)
@given(data=st.data())
def test_malformed_frames_break_their_rule(rule: str, data: st.DataObject) -> None:
    bad: MalformedFrame = data.draw(malformed_frames(rules={rule}), label="bad")
    assert bad.rule == rule
    connection = TunnelConnection(bad.mode, bad.version, bad.services)
    with pytest.raises(ProtocolError) as info:
        connection.receive_data(bad.data)
    assert info.value.rule == rule
    assert info.value.accepted == bad.accepted


@settings(max_examples=SOME, deadline=None)
@given(data=st.data())
def test_malformed_frames_cut_anywhere(data: st.DataObject) -> None:
    bad = data.draw(malformed_frames(version=ProtocolVersion.V3, mode="source"))
    chunks = data.draw(byte_chunks(bad.data))
    connection = TunnelConnection(bad.mode, bad.version, bad.services)
    received: list[TunnelMessage] = []
    with pytest.raises(ProtocolError) as info:
        for chunk in chunks:
            received += connection.receive_data(chunk)
    assert info.value.rule == bad.rule
    assert (*received, *info.value.accepted) == bad.accepted


def test_every_message_rule_has_malformed_frames() -> None:
    documented = set()
    for rule in MESSAGE_RULES:
        documented |= set(re.findall(r"Rule ``([a-z-]+)``", inspect.getdoc(rule) or ""))
    assert len(documented) == len(MESSAGE_RULES)
    assert documented <= set(MALFORMED_RULES)


def test_rules_that_cannot_apply_are_refused() -> None:
    with pytest.raises(ValueError, match="can be broken in that setting"):
        malformed_frames(version=3, rules={"type-not-in-version"})
    with pytest.raises(ValueError, match="unknown rules"):
        malformed_frames(rules={"nope"})
