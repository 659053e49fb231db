"""Control-plane events close connections; start, stop, errors and leaks."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest
from freezegun import freeze_time

import pytest_securetunnel.protocol._relay as relay_module
from pytest_securetunnel.protocol import TunnelMessage
from pytest_securetunnel.proxy import Delivery, TunnelProxy, TunnelProxyError
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import (
    RawClient,
    connect_client,
    connect_pair,
    data,
    describe,
    open_tunnel,
    recv_messages,
    start_stream,
)
from .test_proxy_relay import closed_with


async def test_close_tunnel_closes_both_sides_1000(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    assert await closed_with(src) == (1000, "Tunnel closed by CloseTunnel")
    assert await closed_with(dst) == (1000, "Tunnel closed by CloseTunnel")
    tunnel = describe(fake, opened["tunnelId"])
    assert tunnel["sourceConnectionState"]["status"] == "DISCONNECTED"
    assert tunnel["destinationConnectionState"]["status"] == "DISCONNECTED"


async def test_close_and_delete_closes_both_sides(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"], "delete": True})
    assert (await closed_with(src))[0] == 1000
    assert (await closed_with(dst))[0] == 1000


async def test_expiry_closes_both_sides_1000(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake, timeoutConfig={"maxLifetimeTimeoutMinutes": 5})
    src, dst = await connect_pair(proxy, opened)
    fake.clock.advance(minutes=6)  # the proxy checks the fake's deadlines every 50 ms
    expired = "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed"
    assert await closed_with(src) == (1000, expired)
    assert await closed_with(dst) == (1000, expired)


async def test_rotation_closes_that_side_1008(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    src, dst = await connect_pair(proxy, opened)
    await start_stream(src, dst)
    rotated = fake.call(
        "RotateTunnelAccessToken", {"tunnelId": opened["tunnelId"], "clientMode": "SOURCE"}
    )
    assert await closed_with(src) == (1008, "Access token revoked by RotateTunnelAccessToken")
    await proxy.wait_for_async("disconnected", mode="source")
    assert describe(fake, opened["tunnelId"])["sourceConnectionState"]["status"] == "DISCONNECTED"
    again = await connect_client(proxy, rotated["sourceAccessToken"], "source")
    await again.recv()
    # The source reconnected: the destination's stream of the revoked connection ends.
    assert await recv_messages(dst) == [TunnelMessage.stream_reset(1, "SSH")]
    await start_stream(again, dst, stream_id=2)
    await asyncio.gather(again.close(), dst.close())


async def test_async_with_runs_on_the_callers_loop(fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    before = threading.active_count()
    async with TunnelProxy(fake, tls=False) as proxy:
        assert threading.active_count() <= before  # no thread in this mode
        src, dst = await connect_pair(proxy, opened)
        await start_stream(src, dst)
        with pytest.raises(RuntimeError, match="wait_for_async"):
            proxy.wait_for("connected")
        proxy.set_delivery(opened["tunnelId"], Delivery(delay=0.01), mode="destination")
        await src.send(data(b"later"))
        assert await recv_messages(dst) == [TunnelMessage.data(1, b"later", "SSH", 1)]
        await asyncio.gather(src.close(), dst.close())
        await proxy.wait_for_async("disconnected", mode="destination")
    assert asyncio.all_tasks() == {asyncio.current_task()}


def _open_sockets() -> int:
    fds = os.listdir("/proc/self/fd")
    return sum(1 for fd in fds if _readlink(f"/proc/self/fd/{fd}").startswith("socket:"))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_stop_leaves_no_threads_or_sockets_and_is_fast(fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    threads, sockets = set(threading.enumerate()), _open_sockets()
    started = time.perf_counter()
    proxy = TunnelProxy(fake).start()
    start_s = time.perf_counter() - started
    client = RawClient(proxy.port, opened["sourceAccessToken"], "source")  # left open
    proxy.wait_for("connected")
    started = time.perf_counter()
    proxy.stop()
    stop_s = time.perf_counter() - started
    client.close()
    # Only what this test started counts: under xdist, earlier tests' threads and
    # sockets in the same worker may still be finishing.
    assert set(threading.enumerate()) - threads == set()
    assert _open_sockets() <= sockets
    assert start_s < 1 and stop_s < 1, (start_s, stop_s)  # milliseconds; 0.2 s grace here
    assert proxy.wait_for("disconnected").code == 1001
    assert describe(fake, opened["tunnelId"])["sourceConnectionState"]["status"] == "DISCONNECTED"


def test_restart_uses_new_ports_and_keeps_the_log(fake: SecureTunnelFake) -> None:
    proxy = TunnelProxy(fake, tls=False)
    with proxy:
        first = proxy.port
    with pytest.raises(RuntimeError, match="not running"):
        proxy.endpoint  # noqa: B018
    with proxy:
        assert proxy.endpoint == f"ws://127.0.0.1:{proxy.port}"
        assert proxy.port != first or proxy.port > 0


async def test_internal_error_closes_1011_and_is_raised_at_stop(
    fake: SecureTunnelFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = open_tunnel(fake)

    def broken(*args: object) -> None:
        raise RuntimeError("bug in the relay")

    proxy = TunnelProxy(fake, tls=False).start()
    try:
        src, dst = await connect_pair(proxy, opened)
        monkeypatch.setattr(relay_module, "validate_message", broken)
        await src.send(data(b"x"))
        code, _ = await closed_with(src)
        assert code == 1011
        await dst.close()
    finally:
        with pytest.raises(TunnelProxyError, match="bug in the relay") as raised:
            proxy.stop()
    assert isinstance(raised.value.errors[0], RuntimeError)


def test_check_raises_each_error_once(fake: SecureTunnelFake) -> None:
    with TunnelProxy(fake, tls=False) as proxy:
        proxy._record_error(RuntimeError("one"))
        with pytest.raises(TunnelProxyError, match="one"):
            proxy.check()
        proxy.check()  # already reported
    assert len(proxy.errors) == 1


def test_exit_does_not_hide_the_callers_exception(fake: SecureTunnelFake) -> None:
    with (
        pytest.raises(ValueError, match="the test failed") as raised,
        TunnelProxy(fake, tls=False) as proxy,
    ):
        proxy._record_error(RuntimeError("proxy bug"))
        raise ValueError("the test failed")
    notes = getattr(raised.value, "__notes__", [])
    assert not notes or "proxy bug" in notes[0]


def test_wait_for_timeout_lists_recent_events(proxy: TunnelProxy) -> None:
    started = time.perf_counter()
    with pytest.raises(TimeoutError, match="no proxy event matching kind='connected'"):
        proxy.wait_for("connected", timeout=0.05)
    assert time.perf_counter() - started < 1


def test_runs_under_frozen_time(fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    with freeze_time("2024-05-01 12:00:00"), TunnelProxy(fake, tls=False) as proxy:
        proxy.set_delivery(opened["tunnelId"], Delivery(delay=0.02))
        client = RawClient(proxy.port, opened["sourceAccessToken"], "source")
        assert client.next_frame().data  # SERVICE_IDS, after the real-time delay
        client.close()
        proxy.wait_for("disconnected", timeout=5)


async def test_sync_with_inside_a_running_loop(fake: SecureTunnelFake) -> None:
    # As in a notebook or a pytest-asyncio test: the proxy runs on its own thread's loop.
    opened = open_tunnel(fake)
    with TunnelProxy(fake, tls=False) as proxy:
        src, dst = await connect_pair(proxy, opened)
        await start_stream(src, dst)
        await asyncio.gather(src.close(), dst.close())
        await proxy.wait_for_async("disconnected", mode="source")
    assert not [t for t in threading.enumerate() if t.name == "securetunnel-proxy"]
