"""Backpressure: a shaped delivery slows the sender down instead of queueing without end."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from pytest_securetunnel.protocol import MessageType
from pytest_securetunnel.proxy import Delivery, TunnelProxy
from pytest_securetunnel.proxy._peer import SHAPED_QUEUE_LIMIT
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import connect_client, data, open_tunnel, start_stream

FRAME = data(b"x" * 64512)
#: The flood stops here whatever happens, so that a proxy without backpressure only
#: costs the test this much memory.
FLOOD_CAP = 1000 * len(FRAME)  # about 64 MB
#: What the destination reads before the sender's pace is measured, then while it is.
WARM_UP = 16 * len(FRAME)  # about 1 MB
MEASURED = 24 * len(FRAME)  # about 1.5 MB
#: A generous bound on what the proxy's socket receive buffer takes on loopback (the
#: kernel grows it while the proxy still reads: 1-4.2 MB seen, the most on a loaded
#: machine). Without backpressure the sender runs 18-26 MB ahead.
SOCKET_BUFFERS = 8_000_000


def held_by_proxy(proxy: TunnelProxy, tunnel_id: str) -> int:
    """The most payload bytes the proxy held at once: received from the source, not yet
    written to the destination nor dropped (its shaped queue and write buffer)."""
    held = peak = 0
    for event in proxy.events:
        if event.tunnel_id != tunnel_id or event.message is None:
            continue
        if event.message.type is not MessageType.DATA:
            continue
        if event.kind == "received" and event.mode == "source":
            held += len(event.message.payload)
        elif event.kind in ("sent", "dropped") and event.mode == "destination":
            held -= len(event.message.payload)
        peak = max(peak, held)
    return peak


@pytest.mark.parametrize(
    "delivery",
    [
        pytest.param(Delivery(bandwidth=4_000_000), id="bandwidth"),
        pytest.param(Delivery(delay=0.05), id="delay"),
        pytest.param(Delivery(bandwidth=4_000_000, frames_per_message=2), id="aggregated"),
    ],
)
async def test_shaped_delivery_pushes_back_on_a_flooding_sender(
    proxy: TunnelProxy, fake: SecureTunnelFake, delivery: Delivery
) -> None:
    opened = open_tunnel(fake)
    tunnel_id = opened["tunnelId"]
    # The sender's own socket buffer is kept small: what it has sent is then close to
    # what the proxy's socket took.
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2**16)
    src = await connect_client(proxy, opened["sourceAccessToken"], "source", sock=sock)
    dst = await connect_client(proxy, opened["destinationAccessToken"], "destination")
    await src.recv()  # SERVICE_IDS
    await dst.recv()
    await start_stream(src, dst)
    proxy.set_delivery(tunnel_id, delivery, mode="destination")
    accepted = 0  # bytes the sender got rid of: the proxy (or a socket buffer) took them

    async def flood() -> None:
        nonlocal accepted
        while accepted < FLOOD_CAP:
            await src.send(FRAME)
            accepted += len(FRAME)

    flooding = asyncio.ensure_future(flood())
    delivered = 0

    async def deliver(until: int) -> tuple[int, int]:
        nonlocal delivered
        while delivered < until:
            delivered += len(await asyncio.wait_for(dst.recv(), 5))
        return accepted, delivered

    try:
        # Until the buffers on the way are full, the sender runs ahead; then it keeps
        # the destination's pace.
        accepted_1, delivered_1 = await deliver(WARM_UP)
        accepted_2, delivered_2 = await deliver(WARM_UP + MEASURED)
    finally:
        flooding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flooding
        await asyncio.gather(src.close(), dst.close())
    held = held_by_proxy(proxy, tunnel_id)
    # The sender is ahead of the destination by no more than the proxy's queue and the
    # socket buffers ...
    ahead = accepted_1 - delivered_1
    assert ahead < SOCKET_BUFFERS, f"the sender was {ahead} bytes ahead"
    # ... and then it sends at the pace of the delivery.
    assert accepted_2 - accepted_1 < delivered_2 - delivered_1 + SOCKET_BUFFERS / 2
    # The proxy holds a bounded amount: its queue, what one read of the socket brought
    # in (256 KiB), and the message being written.
    assert held <= SHAPED_QUEUE_LIMIT + 2**18 + 2 * len(FRAME), f"proxy held {held} bytes"
