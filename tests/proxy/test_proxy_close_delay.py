"""The close-delay fault: connections closed late after CloseTunnel or expiry.

AWS says clients "might not be closed immediately" after CloseTunnel. By default the
proxy closes at once; ``set_close_delay`` lets a test check an agent that must cope.
Measured on the event log's real monotonic timestamps, without sleeping.
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_securetunnel import SyncTunnelClient
from pytest_securetunnel._realtime import real_monotonic
from pytest_securetunnel.proxy import TunnelProxy
from pytest_securetunnel.service import SecureTunnelFake

from .conftest import describe, open_tunnel

CLOSED = (1000, "Tunnel closed by CloseTunnel")
EXPIRED = (1000, "Tunnel expired: its maxLifetimeTimeoutMinutes elapsed")
DELAY = 0.5


def connect(proxy: TunnelProxy, opened: dict[str, Any]) -> tuple[Any, Any]:
    source = SyncTunnelClient.connect(proxy.endpoint, opened["sourceAccessToken"], "source")
    destination = SyncTunnelClient.connect(
        proxy.endpoint, opened["destinationAccessToken"], "destination"
    )
    for client in (source, destination):
        client.ping()  # the proxy has finished opening both connections
    return source, destination


def closing_events(proxy: TunnelProxy, tunnel_id: str, after: int) -> list[Any]:
    for mode in ("source", "destination"):
        proxy.wait_for("closing", timeout=10, after=after, tunnel=tunnel_id, mode=mode)
    return [
        e
        for e in proxy.events
        if e.kind == "closing" and e.tunnel_id == tunnel_id and e.seq > after
    ]


def test_close_tunnel_closes_at_once_by_default(proxy: TunnelProxy, fake: SecureTunnelFake) -> None:
    opened = open_tunnel(fake)
    source, destination = connect(proxy, opened)
    mark, started = proxy.last_seq, real_monotonic()
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    events = closing_events(proxy, opened["tunnelId"], mark)
    assert max(e.time for e in events) - started < DELAY
    for client in (source, destination):
        client.wait_closed(timeout=5)
        assert (client.close_code, client.close_reason) == CLOSED
        client.close()


def test_close_tunnel_with_a_delay_keeps_relaying_until_it_passes(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    tunnel_id = opened["tunnelId"]
    proxy.set_close_delay(DELAY)
    source, destination = connect(proxy, opened)
    stream = source.start_stream("SSH")
    mark, started = proxy.last_seq, real_monotonic()
    fake.call("CloseTunnel", {"tunnelId": tunnel_id})

    assert describe(fake, tunnel_id)["status"] == "CLOSED"  # the control plane at once
    for mode in ("source", "destination"):  # the proxy hears of the close on its loop
        fault = proxy.wait_for("fault", timeout=5, after=mark, tunnel=tunnel_id, mode=mode)
        assert fault.reason == "close-delay 0.5s"
    source.send(b"late data", stream_id=stream, service_id="SSH")
    assert destination.receive_data("SSH", timeout=5) == b"late data"
    refused = [e for e in proxy.events if e.seq > mark and e.kind == "closing"]
    assert refused == []  # the data went through before any close began
    with pytest.raises(Exception, match="Tunnel is closed"):
        SyncTunnelClient.connect(
            proxy.endpoint, opened["sourceAccessToken"], "source", client_token="c" * 32
        )

    events = closing_events(proxy, tunnel_id, mark)
    assert {(e.mode, e.code, e.reason) for e in events} == {
        ("source", *CLOSED),
        ("destination", *CLOSED),
    }
    assert min(e.time for e in events) - started >= DELAY
    sent = [
        e
        for e in proxy.events
        if e.kind == "sent" and e.mode == "destination" and e.seq > mark and e.message
    ]
    assert max(e.seq for e in sent) < min(e.seq for e in events)
    for client in (source, destination):
        client.wait_closed(timeout=5)
        assert (client.close_code, client.close_reason) == CLOSED
        client.close()


def test_expiry_is_delayed_too_and_a_tunnels_own_setting_wins(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake, timeoutConfig={"maxLifetimeTimeoutMinutes": 5})
    other = open_tunnel(fake, timeoutConfig={"maxLifetimeTimeoutMinutes": 5})
    proxy.set_close_delay(60.0)
    proxy.set_close_delay(DELAY, tunnel=opened["tunnelId"])
    proxy.set_close_delay(None, tunnel=other["tunnelId"])  # no own setting: the default
    source, destination = connect(proxy, opened)
    other_source = SyncTunnelClient.connect(proxy.endpoint, other["sourceAccessToken"], "source")
    other_source.ping()
    mark, started = proxy.last_seq, real_monotonic()
    fake.clock.advance(minutes=5)
    events = closing_events(proxy, opened["tunnelId"], mark)
    assert {(e.code, e.reason) for e in events} == {EXPIRED}
    assert min(e.time for e in events) - started >= DELAY
    assert not other_source.closed  # 60 s from now
    for client in (source, destination):
        client.wait_closed(timeout=5)
        client.close()
    other_source.close()


def test_delete_closes_at_once_whatever_the_delay(
    proxy: TunnelProxy, fake: SecureTunnelFake
) -> None:
    opened = open_tunnel(fake)
    proxy.set_close_delay(60.0)
    source, destination = connect(proxy, opened)
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"], "delete": True})
    for client in (source, destination):
        client.wait_closed(timeout=5)
        assert (client.close_code, client.close_reason) == (1000, "Tunnel deleted")
        client.close()


def test_stopping_the_proxy_ends_a_pending_delay() -> None:
    fake = SecureTunnelFake()
    proxy = TunnelProxy(fake, tls=False).start()
    opened = open_tunnel(fake)
    proxy.set_close_delay(60.0)
    source, destination = connect(proxy, opened)
    fake.call("CloseTunnel", {"tunnelId": opened["tunnelId"]})
    started = real_monotonic()
    proxy.stop()
    assert real_monotonic() - started < 5
    for client in (source, destination):
        client.wait_closed(timeout=5)
        assert (client.close_code, client.close_reason) == (1001, "Proxy stopped")
        client.close()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, "close delay must be a finite number of seconds >= 0; got -1"),
        (float("nan"), ValueError, "got nan"),
        (float("inf"), ValueError, "got inf"),
        ("1", TypeError, "close delay must be a number of seconds; got '1'"),
        (True, TypeError, "got True"),
    ],
)
def test_bad_delays_are_refused(
    proxy: TunnelProxy, value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        proxy.set_close_delay(value)
