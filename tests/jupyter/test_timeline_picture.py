"""The tunnel picture: lanes, intervals and marks, as SVG and as text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.jupyter import render_tunnel_html, render_tunnel_text

SVG = "{http://www.w3.org/2000/svg}"


def scripted_tunnel(fake: SecureTunnelFake, client: Any) -> str:
    """Open (30 min), source at +1m, destination at +3m, rotate SOURCE at +6m (the source
    connection drops), destination leaves at +7m, close at +8m."""
    opened = client.open_tunnel(
        destinationConfig={"thingName": "robot-7", "services": ["SSH"]},
        timeoutConfig={"maxLifetimeTimeoutMinutes": 30},
    )
    fake.clock.advance(minutes=1)
    fake.authorize_connection(opened["sourceAccessToken"], "source")
    fake.clock.advance(minutes=2)
    tunnel = fake.authorize_connection(opened["destinationAccessToken"], "destination")
    fake.clock.advance(minutes=3)
    client.rotate_tunnel_access_token(tunnelId=opened["tunnelId"], clientMode="SOURCE")
    fake.connection_closed(tunnel, "source")
    fake.clock.advance(minutes=1)
    fake.connection_closed(tunnel, "destination")
    fake.clock.advance(minutes=1)
    client.close_tunnel(tunnelId=opened["tunnelId"])
    return str(opened["tunnelId"])


def svg_of(html: str) -> ET.Element:
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])  # well-formed XML, or this raises


def test_the_svg_draws_connected_intervals_to_scale(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel = securetunnel.tunnel(scripted_tunnel(securetunnel, securetunnel_client))
    picture = svg_of(render_tunnel_html(tunnel, securetunnel))
    rects = {r.get("class"): r for r in picture.iter(f"{SVG}rect")}
    lifetime = rects["lifetime-open"]
    x0, full = float(lifetime.get("x", 0)), float(lifetime.get("width", 0))
    source, destination = rects["source-connected"], rects["destination-connected"]
    # The view spans the 8 minutes the tunnel lived: +1m..+6m and +3m..+7m.
    assert abs(float(source.get("x", 0)) - (x0 + full / 8)) < 1
    assert abs(float(source.get("width", 0)) - full * 5 / 8) < 1
    assert abs(float(destination.get("x", 0)) - (x0 + full * 3 / 8)) < 1
    assert abs(float(destination.get("width", 0)) - full * 4 / 8) < 1


def test_the_svg_labels_every_mark_in_plain_sight(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel = securetunnel.tunnel(scripted_tunnel(securetunnel, securetunnel_client))
    picture = svg_of(render_tunnel_html(tunnel, securetunnel))
    texts = [t.text for t in picture.iter(f"{SVG}text")]
    assert [t for t in texts if t in ("tunnel", "source", "destination", "device")] == [
        "tunnel",
        "source",
        "destination",
        "device",
    ]
    assert "+6m rotated SOURCE" in texts
    assert "+8m closed" in texts
    assert "+0s notify (OpenTunnel)" in texts
    assert "+0s" in texts and "+8m" in texts  # the axis
    assert not list(picture.iter(f"{SVG}title"))  # nothing hides behind a tooltip


def test_an_open_tunnel_shows_the_lifetime_left(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    opened = securetunnel_client.open_tunnel(timeoutConfig={"maxLifetimeTimeoutMinutes": 10})
    securetunnel.clock.advance(minutes=6)
    tunnel = securetunnel.tunnel(opened["tunnelId"])
    picture = svg_of(render_tunnel_html(tunnel, securetunnel))
    rects = {r.get("class"): r for r in picture.iter(f"{SVG}rect")}
    used, left = rects["lifetime-open"], rects["lifetime-left"]
    assert abs(float(used.get("width", 0)) / float(left.get("width", 0)) - 6 / 4) < 0.05


def test_markup_in_values_cannot_escape_the_svg(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    opened = securetunnel_client.open_tunnel()
    securetunnel.tunnel(opened["tunnelId"]).events.append(
        (securetunnel.clock.time(), "source disconnected (1008 <b>&replaced</b>)")
    )
    html = render_tunnel_html(securetunnel.tunnel(opened["tunnelId"]), securetunnel)
    picture = svg_of(html)
    assert "<b>&replaced" not in html
    assert "+0s 1008 <b>&replaced</b>" in [t.text for t in picture.iter(f"{SVG}text")]


def test_the_text_picture_has_the_same_lanes(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    tunnel = securetunnel.tunnel(scripted_tunnel(securetunnel, securetunnel_client))
    lines = render_tunnel_text(tunnel, securetunnel).splitlines()
    chart = {line.split()[0]: line[14:] for line in lines[3:8]}
    assert lines[3].split() == ["+0s", "+8m"]
    tunnel_row, source, destination = chart["tunnel"], chart["source"], chart["destination"]
    width = 48
    assert tunnel_row == "=" * 35 + "|" + "=" * 11 + "X"  # rotation at 6/8, close at the end
    assert source.index("#") == round((width - 1) / 8)
    assert source.rindex("#") == round((width - 1) * 6 / 8)
    assert destination.index("#") == round((width - 1) * 3 / 8)
    assert destination.rindex("#") == round((width - 1) * 7 / 8)
    assert chart["device"].strip() == "*"
