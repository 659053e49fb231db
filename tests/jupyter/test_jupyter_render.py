"""HTML and text views of the fake: content, escaping, statuses, lifetimes, timelines."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.jupyter import (
    format_duration,
    lifetime_left,
    render_fake_html,
    render_fake_text,
    render_tunnel_html,
    render_tunnel_text,
    timeline,
)
from pytest_securetunnel.report import mask_token

MALICIOUS = '<script>alert("x")</script> & <img src=x onerror=y>'


def open_robot_tunnel(client: Any, minutes: int = 30, **extra: Any) -> str:
    opened = client.open_tunnel(
        description=MALICIOUS,
        destinationConfig={"thingName": "robot-7", "services": ["SSH", "HTTP"]},
        tags=[{"key": "team", "value": "edge+ops"}],
        timeoutConfig={"maxLifetimeTimeoutMinutes": minutes},
        **extra,
    )
    return str(opened["tunnelId"])


def test_an_empty_fake_says_so(securetunnel: SecureTunnelFake) -> None:
    text = render_fake_text(securetunnel)
    assert "Tunnels: none" in text
    assert "Recent calls: none" in text
    assert "Device notifications: none" in text
    html = render_fake_html(securetunnel)
    assert "Tunnels (0)" in html
    assert "no tunnels" in html


def test_a_malicious_description_is_escaped(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel_id = open_robot_tunnel(securetunnel_client)
    tunnel = securetunnel.tunnel(tunnel_id)
    for html in (render_fake_html(securetunnel), render_tunnel_html(tunnel, securetunnel)):
        assert "<script>" not in html
        assert "<img" not in html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in html


def test_the_fake_view_shows_tunnels_calls_and_notifications(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel_id = open_robot_tunnel(securetunnel_client, minutes=90)
    with pytest.raises(securetunnel_client.exceptions.ResourceNotFoundException):
        securetunnel_client.describe_tunnel(tunnelId="no-such-tunnel")
    html = render_fake_html(securetunnel)
    text = render_fake_text(securetunnel)
    for view in (html, text):
        assert tunnel_id in view
        assert "OPEN" in view
        assert "robot-7" in view
        assert "SSH, HTTP" in view
        assert "team=edge+ops" in view
        assert "1h 30m left of 90m" in view
        assert "OpenTunnel" in view
        assert "ResourceNotFoundException: Tunnel no-such-tunnel not found" in view
        assert "$aws/things/robot-7/tunnels/notify" in view
    assert "Tunnels: 1" in text
    assert "Recent calls: 2 of 2" in text
    assert "Device notifications: 1 of 1" in text


def test_access_tokens_are_masked(securetunnel: SecureTunnelFake, securetunnel_client: Any) -> None:
    tunnel_id = open_robot_tunnel(securetunnel_client)
    rotated = securetunnel_client.rotate_tunnel_access_token(
        tunnelId=tunnel_id, clientMode="DESTINATION"
    )
    token = rotated["destinationAccessToken"]
    for view in (render_fake_html(securetunnel), render_fake_text(securetunnel)):
        assert token not in view
        assert securetunnel.tunnel(tunnel_id).source_token not in view
        assert mask_token(token, "destination") in view
        assert "RotateTunnelAccessToken" in view


def test_lifetime_counts_down_by_the_fakes_clock(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel = securetunnel.tunnel(open_robot_tunnel(securetunnel_client, minutes=30))
    securetunnel.clock.advance(minutes=10)
    left = lifetime_left(tunnel, securetunnel.clock.time())
    assert left is not None
    assert 19 * 60 < left <= 20 * 60
    assert "left of 30m" in render_tunnel_text(tunnel, securetunnel)


def test_an_expired_tunnel_shows_closed_and_expired(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel = securetunnel.tunnel(open_robot_tunnel(securetunnel_client, minutes=5))
    securetunnel.clock.advance(minutes=7)
    now = securetunnel.clock.time()
    assert lifetime_left(tunnel, now) is None
    text = render_tunnel_text(tunnel, securetunnel)
    assert f"Tunnel {tunnel.tunnel_id} CLOSED" in text
    assert re.search(r"expired 2m 0\ds ago", text)
    assert [event for _, event in timeline(tunnel, now)] == ["opened", "expired"]
    html = render_tunnel_html(tunnel, securetunnel)
    assert ">CLOSED<" in html
    assert "<code>+5m 00s</code> expired" in html


def test_expiry_shows_even_before_the_fake_applies_it() -> None:
    fake = SecureTunnelFake(seed=3)
    fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 1}})
    tunnel = next(iter(fake))
    later = tunnel.created_at + 120
    assert [event for _, event in timeline(tunnel, later)] == ["opened", "expired"]
    assert "expired" not in [event for _, event in tunnel.events]


def test_a_closed_tunnel_shows_closed_not_expired(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel_id = open_robot_tunnel(securetunnel_client)
    securetunnel_client.close_tunnel(tunnelId=tunnel_id)
    tunnel = securetunnel.tunnel(tunnel_id)
    text = render_tunnel_text(tunnel, securetunnel)
    assert "CLOSED" in text
    assert "closed 0s ago" in text
    assert [event for _, event in timeline(tunnel, securetunnel.clock.time())] == [
        "opened",
        "closed",
    ]


def test_connections_and_rotation_appear_in_the_timeline(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    from pytest_securetunnel import SyncTunnelClient, TunnelProxy

    opened = securetunnel_client.open_tunnel(
        destinationConfig={"thingName": "robot-7", "services": ["SSH"]}
    )
    tunnel = securetunnel.tunnel(opened["tunnelId"])
    with TunnelProxy(securetunnel) as proxy:
        source = SyncTunnelClient.connect(proxy.endpoint, opened["sourceAccessToken"], "source")
        with source:
            tunnels_table = render_fake_html(securetunnel).split("Recent calls")[0]
            assert tunnels_table.count(">CONNECTED<") == 1
            assert tunnels_table.count(">DISCONNECTED<") == 1
            text = render_tunnel_text(tunnel, securetunnel)
            assert "source CONNECTED, destination DISCONNECTED" in text
            securetunnel_client.rotate_tunnel_access_token(
                tunnelId=opened["tunnelId"], clientMode="SOURCE"
            )
            source.wait_closed()
        proxy.wait_for("disconnected", tunnel=opened["tunnelId"], mode="source")
    events = [event for _, event in timeline(tunnel, securetunnel.clock.time())]
    assert events == [
        "opened",
        "source connected",
        "rotated SOURCE",
        "source disconnected (1008 Access token revoked by RotateTunnelAccessToken)",
    ]
    assert "rotated SOURCE" in render_tunnel_html(tunnel, securetunnel)


def test_only_the_most_recent_calls_are_listed(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    for _ in range(4):
        securetunnel_client.open_tunnel()
    securetunnel_client.list_tunnels()
    text = render_fake_text(securetunnel, calls=2)
    assert "Recent calls: 2 of 5" in text
    assert "    5. ListTunnels" in text
    assert "    3. OpenTunnel" not in text
    assert "Recent calls (2 of 5)" in render_fake_html(securetunnel, calls=2)


def test_tunnels_of_every_account_and_region_are_shown() -> None:
    fake = SecureTunnelFake(seed=5)
    fake.call("OpenTunnel", {}, region="eu-west-1")
    fake.call("OpenTunnel", {})
    text = render_fake_text(fake)
    assert "Tunnels: 2" in text
    assert "123456789012 eu-west-1" in text
    assert "123456789012 us-east-1" in text


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0s"), (59.9, "59s"), (60, "1m 00s"), (3599, "59m 59s"), (43200, "12h 00m"), (-5, "0s")],
)
def test_format_duration(seconds: float, expected: str) -> None:
    assert format_duration(seconds) == expected


def test_a_tunnel_view_takes_its_time_from_a_fake_a_clock_or_a_number() -> None:
    fake = SecureTunnelFake(seed=9)
    fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 10}})
    tunnel = next(iter(fake))
    assert "OPEN" in render_tunnel_text(tunnel, tunnel.created_at + 1)
    assert "OPEN" in render_tunnel_text(tunnel)
    fake.clock.advance(minutes=20)
    for source in (fake, fake.clock, fake.clock.time()):
        assert "CLOSED" in render_tunnel_text(tunnel, source)
        assert ">CLOSED<" in render_tunnel_html(tunnel, source)
    # Expiry is final: a view at an earlier time shows the tunnel CLOSED too.
    assert "CLOSED" in render_tunnel_text(tunnel, tunnel.created_at + 1)


def test_fake_and_tunnel_display_as_html_in_jupyter() -> None:
    from pytest_securetunnel import SecureTunnelFake

    fake = SecureTunnelFake(seed=2)
    opened = fake.call(
        "OpenTunnel", {"description": "<b>x</b>", "destinationConfig": {"services": ["SSH"]}}
    )
    tunnel = fake.tunnel(opened["tunnelId"])
    fake.clock.advance(minutes=30)
    fake_html, tunnel_html = fake._repr_html_(), tunnel._repr_html_()
    assert opened["tunnelId"] in fake_html and "&lt;b&gt;x&lt;/b&gt;" in fake_html
    assert opened["tunnelId"] in tunnel_html
    assert "11h 30m" in tunnel_html  # lifetime left by the fake's clock, not the wall clock


def test_fake_and_tunnel_print_as_text_tables() -> None:
    from pytest_securetunnel import SecureTunnelFake

    fake = SecureTunnelFake(seed=2)
    opened = fake.call("OpenTunnel", {"destinationConfig": {"thingName": "r", "services": ["SSH"]}})
    text = str(fake)
    assert f"Tunnel {opened['tunnelId']} OPEN" in text
    assert "source DISCONNECTED, destination DISCONNECTED" in text
    assert "1. OpenTunnel(" in text
    assert str(fake.tunnel(opened["tunnelId"])).startswith(f"Tunnel {opened['tunnelId']} OPEN")
