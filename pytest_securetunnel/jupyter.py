"""Look at the fake's state: HTML for Jupyter, plain text for terminals and logs.

Pure functions over a :class:`~pytest_securetunnel.SecureTunnelFake` and its
:class:`~pytest_securetunnel.Tunnel` objects; nothing here imports Jupyter. Every value
taken from the fake is escaped, and access tokens are masked. Importing this module (as
importing :mod:`pytest_securetunnel` does) makes them the fake's and the tunnels' own
views: ``print(fake)``, ``print(tunnel)`` and their display in a notebook.

>>> from pytest_securetunnel import SecureTunnelFake
>>> print(render_fake_text(SecureTunnelFake(seed=1)))  # doctest: +ELLIPSIS
SecureTunnelFake seed=1 at ...
Tunnels: none
Recent calls: none
Data plane: none
Device notifications: none
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from pytest_securetunnel import _timeline
from pytest_securetunnel.report import mask_token, summary
from pytest_securetunnel.service import (
    CallRecord,
    Clock,
    DataPlaneEvent,
    Notification,
    SecureTunnelFake,
    Tunnel,
    register_display,
)

#: What a tunnel view reads the time from: the fake, its clock, epoch seconds, or
#: ``None`` for the wall clock.
TimeSource = SecureTunnelFake | Clock | float | None

__all__ = [
    "TimeSource",
    "format_duration",
    "lifetime_left",
    "render_fake_html",
    "render_fake_text",
    "render_tunnel_html",
    "render_tunnel_text",
    "timeline",
]

_STATUS_COLOURS = {
    "OPEN": "#1a7f37",
    "CLOSED": "#6e7781",
    "CONNECTED": "#1a7f37",
    "DISCONNECTED": "#6e7781",
    "REFUSED": "#cf222e",
}

_STYLE = (
    "font-family: system-ui, sans-serif; font-size: 13px; line-height: 1.4; "
    "border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 12px; margin: 4px 0"
)
_TABLE_STYLE = "border-collapse: collapse; margin: 4px 0"
_CELL_STYLE = "border-bottom: 1px solid #eaeef2; padding: 2px 8px; text-align: left"


def format_duration(seconds: float) -> str:
    """A duration for people: ``11h 59m``, ``4m 30s``, ``12s``.

    >>> format_duration(43140), format_duration(270), format_duration(0.4)
    ('11h 59m', '4m 30s', '0s')
    """
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def lifetime_left(tunnel: Tunnel, now: float) -> float | None:
    """Seconds until ``tunnel`` expires at time ``now``, or ``None`` once it is CLOSED."""
    if tunnel.status_at(now) == "CLOSED":
        return None
    return tunnel.expires_at - now


def timeline(tunnel: Tunnel, now: float) -> list[tuple[float, str]]:
    """The tunnel's life as ``(epoch_seconds, text)``, oldest first.

    These are ``tunnel.events`` (opened, connected, disconnected, rotated, closed,
    expired), plus ``expired`` at the end of its lifetime when the clock has passed it
    but the fake has not yet applied the deadline.
    """
    events = sorted(tunnel.events, key=lambda event: event[0])
    ended = tunnel.ended_at(now)
    if (
        ended is not None
        and tunnel.closed_at is None
        and not any(text == "expired" for _, text in events)
    ):
        events.append((tunnel.expires_at, "expired"))
    return events


def _now(source: TimeSource) -> float:
    if isinstance(source, SecureTunnelFake):
        return source.clock.time()
    if isinstance(source, Clock):
        return source.time()
    if source is None:
        return time.time()
    return float(source)


def _iso(epoch: float) -> str:
    moment = _dt.datetime.fromtimestamp(epoch, _dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _all_tunnels(fake: SecureTunnelFake) -> list[Tunnel]:
    return sorted(fake, key=lambda t: (t.created_at, t.sequence), reverse=True)


def _connection_status(tunnel: Tunnel, now: float, key: str) -> str:
    return str(tunnel.describe(now)[key]["status"])


def _lifetime_text(tunnel: Tunnel, now: float) -> str:
    left = lifetime_left(tunnel, now)
    if left is None:
        ended = tunnel.ended_at(now)
        how = "closed" if tunnel.closed_at is not None and tunnel.closed_at == ended else "expired"
        return f"{how} {format_duration(now - (ended or now))} ago"
    return f"{format_duration(math.ceil(left))} left of {tunnel.lifetime_minutes}m"


def _tags_text(tunnel: Tunnel) -> str:
    return ", ".join(f"{k}={v}" for k, v in tunnel.tags.items()) or "-"


def _destination_text(tunnel: Tunnel) -> str:
    thing = tunnel.thing_name or "-"
    services = ", ".join(tunnel.services) or "-"
    return f"thing {thing}, services {services}"


def _call_outcome(record: CallRecord) -> str:
    if record.ok:
        return "ok"
    return f"{record.error_code}: {record.error_message}"


def _call_params(record: CallRecord) -> str:
    return summary(record.params)


def _notification_text(note: Notification) -> str:
    services = ", ".join(str(s) for s in note.payload.get("services", [])) or "-"
    token = mask_token(note.access_token, "destination")
    return f"{note.topic} ({note.reason}) tunnel {note.tunnel_id} services {services} token {token}"


def _data_plane_text(event: DataPlaneEvent) -> str:
    tunnel = event.tunnel_id or "(unknown token)"
    return f"{event.text}, tunnel {tunnel}"


def _offset_text(fake: SecureTunnelFake, event: DataPlaneEvent) -> str:
    """When ``event`` happened, as an offset from its tunnel's creation (else a UTC time)."""
    if event.tunnel_id is not None:
        try:
            return "+" + format_duration(event.time - fake.tunnel(event.tunnel_id).created_at)
        except KeyError:
            pass
    return _iso(event.time)


def _recent(items: Sequence[Any], limit: int) -> list[tuple[int, Any]]:
    start = max(0, len(items) - limit)
    return list(enumerate(list(items)[start:], start=start + 1))


# -- plain text -----------------------------------------------------------------


def render_tunnel_text(tunnel: Tunnel, fake: TimeSource = None) -> str:
    """One tunnel as a few lines of text: status, connections, lifetime, timeline.

    ``fake`` (or its :class:`Clock`, or epoch seconds) gives the time the view is taken at;
    without it, the wall clock.
    """
    now = _now(fake)
    lines = [
        f"Tunnel {tunnel.tunnel_id} {tunnel.status_at(now)} "
        f"({tunnel.account_id} {tunnel.region}, {_lifetime_text(tunnel, now)})",
        f"  source {_connection_status(tunnel, now, 'sourceConnectionState')}, "
        f"destination {_connection_status(tunnel, now, 'destinationConnectionState')}",
        f"  {_destination_text(tunnel)}; tags {_tags_text(tunnel)}",
    ]
    if tunnel.description is not None:
        lines.append(f"  description {tunnel.description!r}")
    lines.extend("  " + line for line in _timeline.text_chart(_picture(tunnel, now, fake)))
    for when, text in timeline(tunnel, now):
        lines.append(f"  +{format_duration(when - tunnel.created_at):>8}  {text}")
    return "\n".join(lines)


def render_fake_text(
    fake: SecureTunnelFake, *, calls: int = 10, notifications: int = 10, data_plane: int = 10
) -> str:
    """The fake's state as text: tunnels, the last ``calls`` calls, the last ``data_plane``
    data-plane events (connects, refusals, closes) and recent notifications.
    """
    now = fake.clock.time()
    lines = [f"SecureTunnelFake seed={fake.seed} at {_iso(now)}"]
    tunnels = _all_tunnels(fake)
    lines.append(f"Tunnels: {len(tunnels)}" if tunnels else "Tunnels: none")
    for tunnel in tunnels:
        lines.extend("  " + line for line in render_tunnel_text(tunnel, fake).splitlines())
    recent_calls = _recent(fake.calls, calls)
    lines.append(
        f"Recent calls: {len(recent_calls)} of {len(fake.calls)}"
        if recent_calls
        else "Recent calls: none"
    )
    for number, record in recent_calls:
        lines.append(
            f"  {number:>3}. {record.operation}({_call_params(record)}) -> {_call_outcome(record)}"
        )
    events = fake.data_plane_events
    recent_events = _recent(events, data_plane)
    lines.append(
        f"Data plane: {len(recent_events)} of {len(events)}"
        if recent_events
        else "Data plane: none"
    )
    for number, event in recent_events:
        lines.append(f"  {number:>3}. {_offset_text(fake, event):>8}  {_data_plane_text(event)}")
    recent_notes = _recent(fake.notifications, notifications)
    lines.append(
        f"Device notifications: {len(recent_notes)} of {len(fake.notifications)}"
        if recent_notes
        else "Device notifications: none"
    )
    for number, note in recent_notes:
        lines.append(f"  {number:>3}. {_notification_text(note)}")
    return "\n".join(lines)


# -- HTML -----------------------------------------------------------------------


def _badge(text: str) -> str:
    colour = _STATUS_COLOURS.get(text, "#9a6700")
    return (
        f'<span style="color: #fff; background: {colour}; border-radius: 8px; '
        f'padding: 0 6px; font-size: 11px">{escape(text)}</span>'
    )


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f'<th style="{_CELL_STYLE}">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL_STYLE}">{cell}</td>' for cell in row) + "</tr>"
        for row in rows
    )
    return (
        f'<table style="{_TABLE_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def _picture(tunnel: Tunnel, now: float, source: TimeSource) -> _timeline.Lanes:
    notes = source.notifications if isinstance(source, SecureTunnelFake) else ()
    return _timeline.lanes(tunnel, timeline(tunnel, now), now, notes)


def _timeline_html(tunnel: Tunnel, now: float, source: TimeSource) -> str:
    events = timeline(tunnel, now)
    items = "".join(
        f"<li><code>+{escape(format_duration(when - tunnel.created_at))}</code> "
        f"{escape(text)} <small>{escape(_iso(when))}</small></li>"
        for when, text in events
    )
    picture = _timeline.svg(_picture(tunnel, now, source))
    return f'{picture}<ol class="securetunnel-timeline" style="margin: 2px 0">{items}</ol>'


def render_tunnel_html(tunnel: Tunnel, fake: TimeSource = None) -> str:
    """One tunnel as an HTML block, with a timeline of its life from ``tunnel.events``.

    ``fake`` (or its :class:`Clock`, or epoch seconds) gives the time the view is taken at;
    without it, the wall clock.
    """
    now = _now(fake)
    status = tunnel.status_at(now)
    description = (
        f"<div>{escape(tunnel.description)}</div>" if tunnel.description is not None else ""
    )
    rows = [
        ("ARN", f"<code>{escape(tunnel.arn)}</code>"),
        ("lifetime", escape(_lifetime_text(tunnel, now))),
        ("source", _badge(_connection_status(tunnel, now, "sourceConnectionState"))),
        (
            "destination",
            _badge(_connection_status(tunnel, now, "destinationConnectionState")),
        ),
        ("thing", escape(tunnel.thing_name or "-")),
        ("services", escape(", ".join(tunnel.services) or "-")),
        ("tags", escape(_tags_text(tunnel))),
    ]
    table = "".join(
        f'<tr><th style="{_CELL_STYLE}">{escape(name)}</th>'
        f'<td style="{_CELL_STYLE}">{value}</td></tr>'
        for name, value in rows
    )
    return (
        f'<div class="securetunnel-tunnel" style="{_STYLE}">'
        f"<div><b>Tunnel</b> <code>{escape(tunnel.tunnel_id)}</code> {_badge(status)}</div>"
        f'{description}<table style="{_TABLE_STYLE}">{table}</table>'
        f"{_timeline_html(tunnel, now, fake)}</div>"
    )


def _data_plane_html(fake: SecureTunnelFake, limit: int) -> str:
    events = fake.data_plane_events
    recent = _recent(events, limit)
    head = f"<h4 style='margin: 6px 0 2px'>Data plane ({len(recent)} of {len(events)})</h4>"
    if not recent:
        return head
    rows = (
        (
            str(number),
            escape(_offset_text(fake, event)),
            f"<code>{escape(event.tunnel_id or '(unknown token)')}</code>",
            escape(event.mode),
            _badge(event.kind.upper()),
            escape("" if event.code is None else str(event.code)),
            escape(event.reason or ""),
        )
        for number, event in recent
    )
    return head + _table(
        ("#", "when", "tunnel", "side", "event", "status / close code", "reason"), rows
    )


def render_fake_html(
    fake: SecureTunnelFake, *, calls: int = 10, notifications: int = 10, data_plane: int = 10
) -> str:
    """The fake's state as HTML: tunnels, the last ``calls`` calls, the last ``data_plane``
    data-plane events (connects, refusals with status and reason, closes with code and
    reason) and recent notifications.
    """
    now = fake.clock.time()
    tunnels = _all_tunnels(fake)
    tunnel_rows = [
        (
            f"<code>{escape(t.tunnel_id)}</code>",
            _badge(t.status_at(now)),
            _badge(_connection_status(t, now, "sourceConnectionState")),
            _badge(_connection_status(t, now, "destinationConnectionState")),
            escape(_lifetime_text(t, now)),
            escape(t.thing_name or "-"),
            escape(", ".join(t.services) or "-"),
            escape(_tags_text(t)),
            escape(t.description or ""),
        )
        for t in tunnels
    ]
    parts = [
        f'<div class="securetunnel-fake" style="{_STYLE}">',
        f"<div><b>SecureTunnelFake</b> seed={escape(str(fake.seed))} "
        f"<small>at {escape(_iso(now))}</small></div>",
        f"<h4 style='margin: 6px 0 2px'>Tunnels ({len(tunnels)})</h4>",
    ]
    if tunnel_rows:
        parts.append(
            _table(
                (
                    "tunnel",
                    "status",
                    "source",
                    "destination",
                    "lifetime",
                    "thing",
                    "services",
                    "tags",
                    "description",
                ),
                tunnel_rows,
            )
        )
    else:
        parts.append("<div><i>no tunnels</i></div>")
    recent_calls = _recent(fake.calls, calls)
    parts.append(
        f"<h4 style='margin: 6px 0 2px'>Recent calls ({len(recent_calls)} of "
        f"{len(fake.calls)})</h4>"
    )
    if recent_calls:
        parts.append(
            _table(
                ("#", "operation", "parameters", "outcome"),
                (
                    (
                        str(number),
                        escape(record.operation),
                        f"<code>{escape(_call_params(record))}</code>",
                        escape(_call_outcome(record)),
                    )
                    for number, record in recent_calls
                ),
            )
        )
    parts.append(_data_plane_html(fake, data_plane))
    recent_notes = _recent(fake.notifications, notifications)
    parts.append(
        f"<h4 style='margin: 6px 0 2px'>Device notifications ({len(recent_notes)} of "
        f"{len(fake.notifications)})</h4>"
    )
    if recent_notes:
        parts.append(
            _table(
                ("#", "topic", "reason", "tunnel", "services", "token"),
                (
                    (
                        str(number),
                        f"<code>{escape(note.topic)}</code>",
                        escape(note.reason),
                        f"<code>{escape(note.tunnel_id)}</code>",
                        escape(", ".join(str(s) for s in note.payload.get("services", []))),
                        f"<code>{escape(mask_token(note.access_token, 'destination'))}</code>",
                    )
                    for number, note in recent_notes
                ),
            )
        )
    parts.append("</div>")
    return "".join(parts)


register_display(SecureTunnelFake, text=render_fake_text, html=render_fake_html)
register_display(
    Tunnel,
    text=lambda tunnel: render_tunnel_text(tunnel, tunnel.clock),
    html=lambda tunnel: render_tunnel_html(tunnel, tunnel.clock),
)
