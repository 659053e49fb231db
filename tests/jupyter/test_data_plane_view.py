"""The data plane next to the calls: connects, refusals (status, reason) and closes
(code, reason) in the fake's HTML and text, and as marks in the tunnel picture."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from pytest_securetunnel import SecureTunnelFake
from pytest_securetunnel.jupyter import (
    render_fake_html,
    render_fake_text,
    render_tunnel_html,
    render_tunnel_text,
)
from pytest_securetunnel.service import Refusal

SVG = "{http://www.w3.org/2000/svg}"
REUSED = "Invalid access token: The access token was previously used and can not be used again."


def scripted(fake: SecureTunnelFake) -> str:
    """Source connects at +0s, reuses its token at +5s (refused), leaves at +10s (1000)."""
    opened = fake.call("OpenTunnel", {"timeoutConfig": {"maxLifetimeTimeoutMinutes": 30}})
    tunnel = fake.authorize_connection(opened["sourceAccessToken"], "source")
    fake.clock.advance(seconds=5)
    with pytest.raises(Refusal):
        fake.authorize_connection(opened["sourceAccessToken"], "source")
    fake.clock.advance(seconds=5)
    fake.connection_closed(tunnel, "source", 1000, "bye")
    with pytest.raises(Refusal):
        fake.authorize_connection("AQGAAXiAunknown", "destination")
    return str(opened["tunnelId"])


def svg_of(html: str) -> ET.Element:
    start, end = html.index("<svg"), html.index("</svg>") + len("</svg>")
    return ET.fromstring(html[start:end])


def test_the_text_view_lists_the_data_plane_after_the_calls() -> None:
    fake = SecureTunnelFake(seed=1)
    tunnel_id = scripted(fake)
    text = render_fake_text(fake)
    section = text[text.index("Data plane:") : text.index("Device notifications:")]
    lines = section.splitlines()
    assert lines[0] == "Data plane: 4 of 4"
    assert lines[1:4] == [
        f"    1.      +0s  source connected, tunnel {tunnel_id}",
        f"    2.      +5s  source refused: 400 {REUSED}, tunnel {tunnel_id}",
        f"    3.     +10s  source disconnected (1000 bye), tunnel {tunnel_id}",
    ]
    assert lines[4].endswith(
        "destination refused: 400 Invalid access token: The access token is not valid., "
        "tunnel (unknown token)"
    )
    assert text.index("Recent calls:") < text.index("Data plane:")
    assert "Data plane: 2 of 4" in render_fake_text(fake, data_plane=2)


def test_the_html_shows_refusal_status_and_reason_and_close_code() -> None:
    fake = SecureTunnelFake(seed=1)
    tunnel_id = scripted(fake)
    html = render_fake_html(fake)
    section = html[html.index("Data plane (4 of 4)") : html.index("Device notifications")]
    table = ET.fromstring(section[section.index("<table") : section.index("</table>") + 8])
    rows = [["".join(cell.itertext()) for cell in row] for row in table.iter("tr")]
    assert rows[0] == ["#", "when", "tunnel", "side", "event", "status / close code", "reason"]
    assert rows[1:] == [
        ["1", "+0s", tunnel_id, "source", "CONNECTED", "", ""],
        ["2", "+5s", tunnel_id, "source", "REFUSED", "400", REUSED],
        ["3", "+10s", tunnel_id, "source", "DISCONNECTED", "1000", "bye"],
        [
            "4",
            rows[4][1],  # a UTC time: no tunnel to measure from
            "(unknown token)",
            "destination",
            "REFUSED",
            "400",
            "Invalid access token: The access token is not valid.",
        ],
    ]
    assert rows[4][1].endswith(" UTC")
    assert html.index("Recent calls") < html.index("Data plane") < html.index("Device")


def test_the_picture_marks_refusals_and_close_codes() -> None:
    fake = SecureTunnelFake(seed=1)
    tunnel = fake.tunnel(scripted(fake))
    svg = svg_of(render_tunnel_html(tunnel, fake))
    labels = {text.get("class"): "".join(text.itertext()) for text in svg.iter(f"{SVG}text")}
    assert labels["label-refused"] == f"+5s refused 400 {REUSED}"
    assert labels["label-disconnected"] == "+10s 1000 bye"
    assert len([c for c in svg.iter(f"{SVG}circle") if c.get("class") == "mark-refused"]) == 1
    source_lane = next(
        line for line in render_tunnel_text(tunnel, fake).splitlines() if "source  " in line
    )
    assert "!" in source_lane  # the refusal, on the source lane of the text picture


def test_the_proxy_reports_close_codes_and_refusals(
    securetunnel: SecureTunnelFake, securetunnel_client: Any
) -> None:
    from pytest_securetunnel import SyncTunnelClient, TunnelProxy
    from pytest_securetunnel.client import HandshakeRefused

    opened = securetunnel_client.open_tunnel(destinationConfig={"services": ["SSH"]})
    tunnel_id = opened["tunnelId"]
    with TunnelProxy(securetunnel) as proxy:
        source = SyncTunnelClient.connect(proxy.endpoint, opened["sourceAccessToken"], "source")
        with source:
            securetunnel_client.close_tunnel(tunnelId=tunnel_id)
            source.wait_closed()
        proxy.wait_for("disconnected", tunnel=tunnel_id, mode="source")
        with pytest.raises(HandshakeRefused):
            SyncTunnelClient.connect(
                proxy.endpoint, opened["destinationAccessToken"], "destination"
            )
    tunnel = securetunnel.tunnel(tunnel_id)
    assert [text for _, text in tunnel.events] == [
        "opened",
        "source connected",
        "closed",
        "source disconnected (1000 Tunnel closed by CloseTunnel)",
        "destination refused: 400 Tunnel is closed",
    ]
    text = render_fake_text(securetunnel)
    assert f"source disconnected (1000 Tunnel closed by CloseTunnel), tunnel {tunnel_id}" in text
    assert f"destination refused: 400 Tunnel is closed, tunnel {tunnel_id}" in text
    svg = svg_of(render_tunnel_html(tunnel, securetunnel))
    kinds = [c.get("class") for c in svg.iter(f"{SVG}circle")]
    assert kinds.count("mark-refused") == 1
    assert kinds.count("mark-disconnected") == 1
