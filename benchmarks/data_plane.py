"""Data-plane benchmark: the tunnel proxy against a bare ``websockets`` relay (the floor).

Both servers run on their own event loop in a background thread of this process, with
the same ``websockets`` settings; the clients run on the main thread's loop. Measured
side by side in one run:

- throughput, source -> destination, of DATA messages with 64512-byte payloads;
- round-trip latency of a 100-byte payload, source -> destination -> source;
- 500 concurrent tunnels with a stream each, checking that no byte is lost or reordered;
- start and stop time of ``TunnelProxy`` (the fixture's cost).

Everything runs pinned to one CPU by default (``--cpu``): the proxy thread and the
clients then share a core, as the bare relay's do. Prints one JSON line.
Targets: throughput >= 70% of the bare relay, round trip within 1.3x of it, 500 tunnels
clean, start/stop in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from pytest_securetunnel.protocol import MAX_WEBSOCKET_FRAME_SIZE, FrameDecoder, TunnelMessage
from pytest_securetunnel.protocol import encode_frame as frame
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

PAYLOAD = 64512
THROUGHPUT_MESSAGES = 200  # 12.9 MB per block
RTT_SAMPLES = 400  # per block
BLOCKS = 10  # per side, alternating proxy and bare
TUNNELS = 500
TUNNEL_MESSAGES = 20
SUBPROTOCOL = "aws.iot.securetunneling-3.0"
CLIENT: dict[str, Any] = {"compression": None, "ping_interval": None, "max_size": 2**20}
# The bare relay gets the same knobs as the proxy's servers.
SERVER: dict[str, Any] = {
    "compression": None,
    "ping_interval": None,
    "max_size": MAX_WEBSOCKET_FRAME_SIZE,
    "write_limit": 2**16,
    "backlog": 4096,
    "server_header": None,
}


class BareRelay:
    """Forwards each WebSocket message to the other client with the same ``id`` query."""

    def __init__(self) -> None:
        self.port = 0
        self._pairs: dict[str, dict[str, ServerConnection]] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        key, mode = query["id"][0], query["local-proxy-mode"][0]
        other_mode = "destination" if mode == "source" else "source"
        pair = self._pairs.setdefault(key, {})
        pair[mode] = ws
        if len(pair) == 2:  # like SERVICE_IDS: tell both sides they can start
            await asyncio.gather(*(side.send(b"paired") for side in pair.values()))
        try:
            async for message in ws:
                other = pair.get(other_mode)
                if other is not None:
                    await other.send(message)
        finally:
            pair.pop(mode, None)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0, **SERVER) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> BareRelay:
        self._thread.start()
        self._ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()


Pair = tuple[ClientConnection, ClientConnection]
_KEYS = itertools.count(10_000)
Opener = Callable[[int], Awaitable[Pair]]


def proxy_opener(proxy: TunnelProxy, fake: SecureTunnelFake) -> Opener:
    """Open a tunnel and connect both sides through the proxy, stream 1 started."""

    async def open_pair(index: int) -> Pair:
        opened = fake.call("OpenTunnel", {"destinationConfig": {"services": ["SSH"]}})
        src, dst = await asyncio.gather(
            connect(
                proxy.url("source"),
                additional_headers={"access-token": opened["sourceAccessToken"]},
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                **CLIENT,
            ),
            connect(
                proxy.url("destination"),
                additional_headers={"access-token": opened["destinationAccessToken"]},
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                **CLIENT,
            ),
        )
        await asyncio.gather(src.recv(), dst.recv())  # SERVICE_IDS
        await src.send(frame(TunnelMessage.stream_start(1, "SSH", 1)))
        await dst.recv()
        return src, dst

    return open_pair


def bare_opener(relay: BareRelay) -> Opener:
    """Connect two clients to the bare relay, paired by ``index``."""

    async def open_pair(index: int) -> Pair:
        base = f"ws://127.0.0.1:{relay.port}/tunnel?id={index}&local-proxy-mode="
        src = await connect(base + "source", **CLIENT)
        dst = await connect(base + "destination", **CLIENT)
        await asyncio.gather(src.recv(), dst.recv())  # "paired"
        return src, dst

    return open_pair


async def throughput(pair: Pair, count: int) -> float:
    """MB/s of DATA payload, source to destination, for ``count`` messages."""
    src, dst = pair
    data = frame(TunnelMessage.data(1, b"x" * PAYLOAD, "SSH", 1))

    async def send() -> None:
        for _ in range(count):
            await src.send(data)

    async def receive() -> None:
        for _ in range(count):
            await dst.recv()

    start = time.perf_counter()
    await asyncio.gather(send(), receive())
    return count * PAYLOAD / (time.perf_counter() - start) / 1e6


async def round_trip(pair: Pair) -> float:
    """Median seconds over RTT_SAMPLES for 100 bytes source -> destination -> source."""
    src, dst = pair
    samples = []
    for _ in range(RTT_SAMPLES):
        start = time.perf_counter()
        await src.send(THERE)
        await dst.recv()
        await dst.send(BACK)
        await src.recv()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


THERE = frame(TunnelMessage.data(1, b"p" * 100, "SSH", 1))
BACK = frame(TunnelMessage.data(1, b"q" * 100, "SSH", 1))


async def side_by_side(
    proxied: Pair,
    bare: Pair,
    measure: Callable[[Pair], Awaitable[float]],
    best: Callable[..., float],
) -> tuple[float, float]:
    """``measure`` each in alternating blocks; the best block of each (the least disturbed
    by other processes on a shared machine, as ``timeit`` does)."""
    results: tuple[list[float], list[float]] = ([], [])
    for n in range(BLOCKS):
        order = ((0, proxied), (1, bare)) if n % 2 else ((1, bare), (0, proxied))
        for index, pair in order:
            results[index].append(await measure(pair))
    return best(results[0]), best(results[1])


async def many_tunnels(open_pair: Opener) -> dict[str, Any]:
    """TUNNELS tunnels at once, each streaming numbered bytes; check every byte arrived."""
    start = time.perf_counter()
    pairs = await asyncio.gather(*(open_pair(i) for i in range(TUNNELS)))
    connected = time.perf_counter() - start

    async def stream(index: int, pair: Pair) -> bool:
        src, dst = pair
        chunks = [f"{index}:{n};".encode() * 50 for n in range(TUNNEL_MESSAGES)]
        for chunk in chunks:
            await src.send(frame(TunnelMessage.data(1, chunk, "SSH", 1)))
        received = bytearray()
        decoder = FrameDecoder()
        while len(received) < sum(map(len, chunks)):
            data = await dst.recv()
            assert isinstance(data, bytes)
            for message in decoder.feed(data):
                received += message.payload
        return bytes(received) == b"".join(chunks)

    start = time.perf_counter()
    results = await asyncio.gather(*(stream(i, pair) for i, pair in enumerate(pairs)))
    streamed = time.perf_counter() - start
    await asyncio.gather(*(ws.close() for pair in pairs for ws in pair))
    return {"clean": all(results), "connect_s": round(connected, 3), "stream_s": round(streamed, 3)}


def start_stop_ms(fake: SecureTunnelFake) -> dict[str, float]:
    """Median start and stop time of a TLS-enabled TunnelProxy over 20 cycles."""
    starts, stops = [], []
    for _ in range(20):
        proxy = TunnelProxy(fake)
        begin = time.perf_counter()
        proxy.start()
        middle = time.perf_counter()
        proxy.stop()
        starts.append(middle - begin)
        stops.append(time.perf_counter() - middle)
    return {
        "start_ms": round(statistics.median(starts) * 1e3, 2),
        "stop_ms": round(statistics.median(stops) * 1e3, 2),
    }


async def run(proxy: TunnelProxy, fake: SecureTunnelFake, relay: BareRelay) -> dict[str, Any]:
    """Side-by-side measurements through the proxy and the bare relay, then 500 tunnels."""
    proxied = await proxy_opener(proxy, fake)(0)
    bare = await bare_opener(relay)(next(_KEYS))
    for pair in (proxied, bare):  # warm up
        await throughput(pair, 50)
    rate_proxy, rate_bare = await side_by_side(
        proxied, bare, lambda pair: throughput(pair, THROUGHPUT_MESSAGES), max
    )
    rtt_proxy, rtt_bare = await side_by_side(proxied, bare, round_trip, min)
    await asyncio.gather(*(ws.close() for ws in (*proxied, *bare)))
    proxy.clear_events()
    return {
        "throughput_mb_s": {
            "proxy": round(rate_proxy, 1),
            "bare": round(rate_bare, 1),
            "ratio": round(rate_proxy / rate_bare, 3),
        },
        "rtt_us": {
            "proxy": round(rtt_proxy * 1e6, 1),
            "bare": round(rtt_bare * 1e6, 1),
            "ratio": round(rtt_proxy / rtt_bare, 3),
        },
        "tunnels_500": {
            "proxy": await many_tunnels(proxy_opener(proxy, fake)),
            "bare": await many_tunnels(bare_opener(relay)),
        },
    }


def main(argv: list[str] | None = None) -> None:
    """Run everything and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="pin the benchmark (its loops and both servers' threads) to this CPU, so the "
        "two sides are compared on the same core; -1 leaves scheduling alone",
    )
    args = parser.parse_args(argv)
    pinned = None
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})  # threads started later inherit it
        pinned = args.cpu
    fake = SecureTunnelFake()
    timing = start_stop_ms(fake)
    with TunnelProxy(fake, tls=False, max_events=10_000) as proxy, BareRelay() as relay:
        result = asyncio.run(run(proxy, fake, relay))
    result["fixture"] = timing
    result["cpu"] = pinned
    result["leaked_threads"] = [t.name for t in threading.enumerate() if t.name != "MainThread"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
