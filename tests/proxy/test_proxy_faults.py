"""Fault injection: drops, resets, delays, re-chunking and a bandwidth cap."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosedError

from pytest_securetunnel.protocol import FrameDecoder, TunnelMessage, encode_frame
from pytest_securetunnel.proxy import AWS_BANDWIDTH_LIMIT, Delivery, ProxyEvent, TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import connect_pair, data, open_tunnel, recv_messages, start_stream


async def test_drop_connection_sends_no_close_frame(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    assert proxy.drop_connection(opened["tunnelId"], "source") == 1
    with pytest.raises(ConnectionClosedError) as info:
        await asyncio.wait_for(src.recv(), 5)
    assert info.value.rcvd is None
    event = await proxy.wait_for_async("disconnected", mode="source")
    assert event.code == 1006
    fault = await proxy.wait_for_async("fault")
    assert (fault.mode, fault.reason) == ("source", "drop")
    await dst.send(data(b"x"))  # the destination is still connected
    await dst.close()


async def test_session_reset_to_both_sides(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    assert proxy.send_session_reset(opened["tunnelId"]) == 2
    assert await recv_messages(src) == [TunnelMessage.session_reset()]
    assert await recv_messages(dst) == [TunnelMessage.session_reset()]
    await asyncio.gather(src.close(), dst.close())


async def test_stream_reset_of_active_and_given_streams(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    assert proxy.send_stream_reset(opened["tunnelId"], "destination") == 1
    assert await recv_messages(dst) == [TunnelMessage.stream_reset(1, "SSH")]
    proxy.send_stream_reset(opened["tunnelId"], "source", stream_id=9, service_id="SSH")
    assert await recv_messages(src) == [TunnelMessage.stream_reset(9, "SSH")]
    await asyncio.gather(src.close(), dst.close())


def test_faults_need_a_connection(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    with pytest.raises(LookupError, match="no source connection is open on tunnel"):
        proxy.drop_connection(opened["tunnelId"], "source")
    with pytest.raises(LookupError, match="no connection is open"):
        proxy.send_session_reset(opened["tunnelId"])


def _sent(proxy: TunnelProxy, tunnel_id: str) -> list[ProxyEvent]:
    return [
        e
        for e in proxy.events
        if e.kind == "sent" and e.mode == "destination" and e.tunnel_id == tunnel_id
    ]


async def test_delay_holds_each_message_in_order(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    proxy.set_delivery(opened["tunnelId"], Delivery(delay=0.1), mode="destination")
    mark = proxy.last_seq
    for payload in (b"1", b"2", b"3"):
        await src.send(data(payload))
    for payload in (b"1", b"2", b"3"):
        assert await recv_messages(dst) == [TunnelMessage.data(1, payload, "SSH", 1)]
    received = [e for e in proxy.events if e.seq > mark and e.kind == "received"]
    sent = [e for e in _sent(proxy, opened["tunnelId"]) if e.seq > mark]
    assert all(s.time - r.time >= 0.1 for r, s in zip(received, sent, strict=True))
    proxy.set_delivery(opened["tunnelId"], None)  # back to immediate delivery
    await src.send(data(b"4"))
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"4", "SSH", 1)]
    await asyncio.gather(src.close(), dst.close())


async def test_aggregate_packs_frames_into_one_websocket_message(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    proxy.set_delivery(opened["tunnelId"], Delivery(frames_per_message=3), mode="destination")
    start = encode_frame(TunnelMessage.stream_start(1, "SSH", 1))
    await src.send(start + data(b"a") + data(b"b"))
    assert await recv_messages(dst) == [
        TunnelMessage.stream_start(1, "SSH", 1),
        TunnelMessage.data(1, b"a", "SSH", 1),
        TunnelMessage.data(1, b"b", "SSH", 1),
    ]
    await src.send(data(b"alone"))  # a partial group is flushed after flush_after
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"alone", "SSH", 1)]
    await asyncio.gather(src.close(), dst.close())


async def test_split_cuts_frames_across_websocket_messages(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    proxy.set_delivery(opened["tunnelId"], Delivery(max_message_size=7), mode="destination")
    frame = data(b"split me please")
    await src.send(frame)
    decoder, chunks = FrameDecoder(), []
    messages: list[TunnelMessage] = []
    while not messages:
        chunk = await asyncio.wait_for(dst.recv(), 5)
        assert isinstance(chunk, bytes) and len(chunk) <= 7
        chunks.append(chunk)
        messages = decoder.feed(chunk)
    assert b"".join(chunks) == frame
    assert len(chunks) == -(-len(frame) // 7)
    await asyncio.gather(src.close(), dst.close())


async def test_bandwidth_cap(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    rate = 100_000
    proxy.set_delivery(opened["tunnelId"], Delivery(bandwidth=rate), mode="destination")
    mark = proxy.last_seq
    frames = [data(bytes([n]) * 10_000) for n in range(4)]
    for frame in frames:
        await src.send(frame)
    for _ in frames:
        await recv_messages(dst)
    sent = [e for e in _sent(proxy, opened["tunnelId"]) if e.seq > mark]
    elapsed = sent[-1].time - sent[0].time
    assert elapsed >= sum(map(len, frames[1:])) / rate * 0.9
    assert AWS_BANDWIDTH_LIMIT == 800_000
    await asyncio.gather(src.close(), dst.close())


def test_delivery_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="frames_per_message"):
        Delivery(frames_per_message=0)
    with pytest.raises(ValueError, match="max_message_size"):
        Delivery(max_message_size=131_077)
    with pytest.raises(ValueError, match="bandwidth"):
        Delivery(bandwidth=0)
