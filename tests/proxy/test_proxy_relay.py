"""Relaying: SERVICE_IDS first, both directions, isolation, close codes, replacement."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from pytest_securetunnel.protocol import MessageType, TunnelMessage, encode_frame
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import (
    V1,
    V2,
    V3,
    RawClient,
    connect_client,
    connect_pair,
    data,
    describe,
    open_tunnel,
    recv_messages,
    request_bytes,
    start_stream,
)


async def closed_with(ws: object) -> tuple[int, str]:
    """Wait for the client to be closed; return the code and reason the proxy sent."""
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 5)  # type: ignore[attr-defined]
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


@pytest.mark.parametrize("subprotocol", [V2, V3])
async def test_service_ids_is_the_first_message(
    proxy: TunnelProxy, fake: SecureTunnelFake, subprotocol: str
) -> None:
    opened = open_tunnel(fake, services=("SSH", "RDP"))
    for mode in ("source", "destination"):
        ws = await connect_client(
            proxy, opened[f"{mode}AccessToken"], mode, subprotocol=subprotocol
        )
        assert await recv_messages(ws) == [TunnelMessage.service_ids(["SSH", "RDP"])]
        await ws.close()


async def test_service_ids_is_empty_without_services(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=())
    ws = await connect_client(proxy, opened["sourceAccessToken"], "source")
    assert await recv_messages(ws) == [TunnelMessage.service_ids([])]
    await ws.close()


async def test_v1_gets_no_service_ids_and_relays(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, services=())
    src, dst = await connect_pair(proxy, opened, subprotocol=V1)
    await src.send(encode_frame(TunnelMessage.stream_start(1)))
    await src.send(encode_frame(TunnelMessage.data(1, b"v1")))
    assert await recv_messages(dst) == [TunnelMessage.stream_start(1)]
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"v1")]
    await asyncio.gather(src.close(), dst.close())


async def test_relays_both_ways_and_logs_every_message(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    await src.send(data(b"ping"))
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"ping", "SSH", 1)]
    await dst.send(data(b"pong"))
    assert await recv_messages(src) == [TunnelMessage.data(1, b"pong", "SSH", 1)]
    received = proxy.messages("received", tunnel=opened["tunnelId"], mode="destination")
    assert received == [TunnelMessage.data(1, b"pong", "SSH", 1)]
    sent = proxy.messages("sent", tunnel=opened["tunnelId"], mode="source")
    assert [m.type for m in sent] == [MessageType.SERVICE_IDS, MessageType.DATA]
    await asyncio.gather(src.close(), dst.close())


async def test_each_message_gets_its_own_websocket_message(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    # localproxy: DATA packed after STREAM_START in one WebSocket message stalls.
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    packed = encode_frame(TunnelMessage.stream_start(1, "SSH", 1)) + data(b"a") + data(b"b")
    await src.send(packed[:5])  # a frame cut across WebSocket messages is reassembled
    await src.send(packed[5:])
    assert await recv_messages(dst) == [TunnelMessage.stream_start(1, "SSH", 1)]
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"a", "SSH", 1)]
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"b", "SSH", 1)]
    await asyncio.gather(src.close(), dst.close())


async def test_fragmented_message_is_relayed_in_order(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    await src.send([data(b"frag")[:3], data(b"frag")[3:]])
    await src.send(data(b"after"))
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"frag", "SSH", 1)]
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"after", "SSH", 1)]
    await asyncio.gather(src.close(), dst.close())


def noncanonical_data(payload: bytes, stream_id: int = 1) -> bytes:
    """A V3 DATA frame whose encoding is valid but not canonical.

    Fields in reverse order, and ``ignorable = false`` written out: re-encoding the
    decoded message gives other bytes.
    """
    service = b"SSH"
    body = (
        bytes([0x38, 1])  # connectionId = 1
        + bytes([0x2A, len(service)])
        + service  # serviceId
        + bytes([0x22, len(payload)])
        + payload  # payload
        + bytes([0x18, 0])  # ignorable = false, a default value written out
        + bytes([0x10, stream_id])  # streamId
        + bytes([0x08, MessageType.DATA])  # type
    )
    frame = len(body).to_bytes(2, "big") + body
    assert encode_frame(TunnelMessage.data(stream_id, payload, "SSH", 1)) != frame
    return frame


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda f: [f], id="whole"),
        pytest.param(lambda f: [f[:1], f[1:]], id="prefix-split"),
        pytest.param(lambda f: [f[:7], f[7:]], id="body-split"),
        pytest.param(lambda f: [f + f[:9], f[9:]], id="packed-and-split"),
        pytest.param(lambda f: [bytes([b]) for b in f], id="byte-by-byte"),
    ],
)
async def test_frames_are_forwarded_byte_identical_however_they_arrive(
    proxy: TunnelProxy, fake: SecureTunnelFake, cut: Callable[[bytes], list[bytes]]
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    frame = noncanonical_data(b"as sent")
    chunks = cut(frame)
    for chunk in chunks:
        await src.send(chunk)
    for _ in range(b"".join(chunks).count(frame)):
        assert await asyncio.wait_for(dst.recv(), 5) == frame
    await asyncio.gather(src.close(), dst.close())


async def test_frames_before_a_violation_are_forwarded_byte_identical(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    frame = noncanonical_data(b"valid")
    violation = encode_frame(TunnelMessage.stream_start(2, "SSH", 1))
    await dst.send(frame[:4])
    await dst.send(frame[4:] + violation)
    assert (await closed_with(dst))[0] == 1002
    assert await asyncio.wait_for(src.recv(), 5) == frame
    assert await recv_messages(src) == [TunnelMessage.stream_reset(1, "SSH")]
    await src.close()


async def test_tunnels_are_isolated(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    first, second = open_tunnel(fake), open_tunnel(fake)
    src1, dst1 = await connect_pair(proxy, first)
    src2, dst2 = await connect_pair(proxy, second)
    await start_stream(src1, dst1)
    await start_stream(src2, dst2)
    await src1.send(data(b"one"))
    await src2.send(data(b"two"))
    assert await recv_messages(dst1) == [TunnelMessage.data(1, b"one", "SSH", 1)]
    assert await recv_messages(dst2) == [TunnelMessage.data(1, b"two", "SSH", 1)]
    assert proxy.messages("sent", tunnel=second["tunnelId"], mode="destination")[-1].payload == (
        b"two"
    )
    await asyncio.gather(*(ws.close() for ws in (src1, dst1, src2, dst2)))


async def test_data_for_an_absent_destination_is_dropped(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src = await connect_client(proxy, opened["sourceAccessToken"], "source")
    await src.recv()
    await src.send(encode_frame(TunnelMessage.stream_start(1, "SSH", 1)))
    dropped = await proxy.wait_for_async("dropped", mode="destination")
    assert dropped.message == TunnelMessage.stream_start(1, "SSH", 1)
    assert dropped.reason == "destination not connected"
    await src.close()


async def test_text_frame_closes_1003(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    src, dst = await connect_pair(proxy, open_tunnel(fake))
    await src.send("text")
    code, reason = await closed_with(src)
    assert code == 1003
    assert "Text frames are not supported" in reason
    await dst.close()


async def test_oversized_message_closes_1009(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    src, dst = await connect_pair(proxy, open_tunnel(fake))
    await src.send(b"\x00" * 131_077)
    assert (await closed_with(src))[0] == 1009
    event = await proxy.wait_for_async("disconnected", mode="source")
    assert event.code == 1009
    await dst.close()


async def test_oversized_fragment_closes_1009(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    src, dst = await connect_pair(proxy, open_tunnel(fake))
    await src.send([data(b"x")[:3], b"\x00" * 131_077])  # a frame begun, then too much
    assert (await closed_with(src))[0] == 1009
    await dst.close()


async def test_fragmented_message_over_131076_bytes_is_relayed(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    # The limit is per WebSocket frame: a message in frames of at most 131076 bytes may
    # be longer, and the tunneling frames it carries are relayed one by one, unchanged.
    src, dst = await connect_pair(proxy, open_tunnel(fake))
    await start_stream(src, dst)
    frames = [data(bytes([n]) * 64512) for n in range(5)]
    stream = b"".join(frames)
    fragments = [stream[i : i + 131_076] for i in range(0, len(stream), 131_076)]
    assert len(fragments) == 3 and len(stream) > 2 * 131_076
    await src.send(fragments)
    for frame in frames:
        assert await asyncio.wait_for(dst.recv(), 5) == frame
    await asyncio.gather(src.close(), dst.close())


async def test_fragmented_text_closes_1003_at_its_first_frame(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    src, dst = await connect_pair(proxy, open_tunnel(fake))
    rest = asyncio.Event()

    async def fragments() -> AsyncIterator[str]:
        yield "te"
        await rest.wait()  # the message never ends while the proxy decides
        yield "xt"

    sending = asyncio.ensure_future(src.send(fragments()))
    code, reason = await closed_with(src)
    assert (code, reason) == (1003, "Text frames are not supported: use binary")
    rest.set()
    with contextlib.suppress(ConnectionClosed):
        await sending
    await dst.close()


async def test_frames_sent_with_the_request_are_relayed_in_order(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination")
    await dst.recv()  # SERVICE_IDS
    request = request_bytes(token=opened["sourceAccessToken"])
    start = encode_frame(TunnelMessage.stream_start(1, "SSH", 1))
    pipelined = [start, data(b"a")[:5], data(b"a")[5:], data(b"b")]
    wire = b"".join(Frame(Opcode.BINARY, f).serialize(mask=True) for f in pipelined)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(request + wire)  # frames before the handshake's answer
        for frame in (start, data(b"a"), data(b"b")):
            assert await asyncio.wait_for(dst.recv(), 5) == frame
    await dst.close()


async def test_message_of_131076_bytes_is_accepted(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    src, dst = await connect_pair(proxy, open_tunnel(fake))
    await start_stream(src, dst)
    frames = data(b"x" * 64512) * 2
    room = 131_076 - len(frames)
    frames += next(f for k in range(room, 0, -1) if len(f := data(b"z" * k)) == room)
    assert len(frames) == 131_076
    await src.send(frames)
    assert [len(m.payload) for m in await recv_messages(dst)] == [64512]
    assert [len(m.payload) for m in await recv_messages(dst)] == [64512]
    await asyncio.gather(src.close(), dst.close())


async def test_violation_closes_offender_1002_and_resets_peer(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    await dst.send(data(b"valid") + encode_frame(TunnelMessage.stream_start(2, "SSH", 1)))
    code, reason = await closed_with(dst)
    assert code == 1002
    assert reason.startswith("stream-start-from-destination: ")
    assert len(reason.encode()) <= 123
    # The valid message before the violation is relayed, then the peer's streams reset.
    assert await recv_messages(src) == [TunnelMessage.data(1, b"valid", "SSH", 1)]
    assert await recv_messages(src) == [TunnelMessage.stream_reset(1, "SSH")]
    event = await proxy.wait_for_async("violation", tunnel=opened["tunnelId"])
    assert (event.mode, event.reason, event.code) == (
        "destination",
        "stream-start-from-destination",
        1002,
    )
    await src.send(data(b"still open"))  # the source stays connected
    await proxy.wait_for_async("dropped", mode="destination")
    await src.close()


async def test_replacement_closes_old_connection_1008(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    headers = {"client-token": "r" * 32}
    src = await connect_client(proxy, opened["sourceAccessToken"], "source", headers=headers)
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination")
    await src.recv()
    await dst.recv()
    await start_stream(src, dst)
    again = await connect_client(proxy, opened["sourceAccessToken"], "source", headers=headers)
    assert await recv_messages(again) == [TunnelMessage.service_ids(["SSH"])]
    assert await closed_with(src) == (1008, "Replaced by a new source connection")
    assert await recv_messages(dst) == [TunnelMessage.stream_reset(1, "SSH")]
    await proxy.wait_for_async("disconnected", mode="source")
    tunnel = describe(fake, opened["tunnelId"])
    assert tunnel["sourceConnectionState"]["status"] == "CONNECTED"
    await start_stream(again, dst, stream_id=2)
    await asyncio.gather(again.close(), dst.close())


async def test_connection_states_follow_connects_and_disconnects(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    tunnel_id = opened["tunnelId"]

    def states() -> dict[str, str]:
        tunnel = describe(fake, tunnel_id)
        return {m: tunnel[f"{m}ConnectionState"]["status"] for m in ("source", "destination")}

    assert states() == {"source": "DISCONNECTED", "destination": "DISCONNECTED"}
    src, dst = await connect_pair(proxy, opened)
    assert states() == {"source": "CONNECTED", "destination": "CONNECTED"}
    await dst.close()
    await proxy.wait_for_async("disconnected", mode="destination")
    assert states() == {"source": "CONNECTED", "destination": "DISCONNECTED"}
    await src.close()
    await proxy.wait_for_async("disconnected", mode="source")
    assert states() == {"source": "DISCONNECTED", "destination": "DISCONNECTED"}


def test_pings_are_echoed_exactly_and_pongs_never_unsolicited(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    client = RawClient(proxy.port, opened["sourceAccessToken"], "source")
    try:
        first = client.next_frame()
        assert first.opcode is Opcode.BINARY  # SERVICE_IDS, and no ping from the proxy
        # localproxy: the ping payload is the time in ms; it parses the pong back.
        client.protocol.send_ping(b"1796041032374")
        # localproxy answers each ping with two pongs: duplicates are tolerated.
        client.protocol.send_frame(Frame(Opcode.PONG, b"x"))
        client.protocol.send_frame(Frame(Opcode.PONG, b"x"))
        client.protocol.send_ping(b"second")
        client.flush()
        assert client.next_frame() == Frame(Opcode.PONG, b"1796041032374")
        assert client.next_frame() == Frame(Opcode.PONG, b"second")  # nothing in between
    finally:
        client.close()


async def test_slow_reader_gets_backpressure_and_every_byte(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src = await connect_client(proxy, opened["sourceAccessToken"], "source")
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination", max_queue=1)
    await src.recv()
    await dst.recv()
    await start_stream(src, dst)
    payloads = [bytes([n % 251]) * 64512 for n in range(600)]  # ~39 MB, beyond socket buffers

    async def send_all() -> None:
        for payload in payloads:
            await src.send(data(payload))

    sender = asyncio.create_task(send_all())
    done, _ = await asyncio.wait({sender}, timeout=0.5)
    assert not done  # the proxy stopped reading the source while the destination lags
    for payload in payloads:
        assert await recv_messages(dst) == [TunnelMessage.data(1, payload, "SSH", 1)]
    await sender
    await asyncio.gather(src.close(), dst.close())


async def test_relays_with_permessage_deflate_and_across_versions(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src = await connect_client(
        proxy, opened["sourceAccessToken"], "source", subprotocol=V2, compression="deflate"
    )
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination")
    assert src.response is not None
    assert src.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
    await src.recv()
    await dst.recv()
    await src.send(encode_frame(TunnelMessage.stream_start(1, "SSH")))
    await src.send(encode_frame(TunnelMessage.data(1, b"z" * 5000, "SSH")))
    assert await recv_messages(dst) == [TunnelMessage.stream_start(1, "SSH")]
    assert await recv_messages(dst) == [TunnelMessage.data(1, b"z" * 5000, "SSH")]
    await dst.send(data(b"back"))
    assert await recv_messages(src) == [TunnelMessage.data(1, b"back", "SSH", 1)]
    await asyncio.gather(src.close(), dst.close())
