"""A tunnel's life as a picture: lanes of intervals and marks on a time axis.

:func:`lanes` turns a tunnel's events (and its device notifications) into positions;
:func:`svg` draws them as inline SVG, :func:`text_chart` as fixed-width text. Pure
functions, no display library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from html import escape

from pytest_securetunnel.service import Notification, Tunnel

__all__ = ["Lanes", "Mark", "lanes", "svg", "text_chart"]

#: Lanes from top to bottom.
LANE_NAMES = ("tunnel", "source", "destination", "device")
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)


@dataclass(frozen=True)
class Mark:
    """One moment worth a label: a rotation, a close, a notification, a refusal."""

    time: float
    lane: str
    label: str
    kind: str


@dataclass(frozen=True)
class Lanes:
    """Everything a picture of one tunnel needs, in epoch seconds.

    ``start``/``end`` bound the view; ``lifetime_end`` is when the tunnel expires (or
    expired); ``ended`` when it closed or expired, if it has; ``connected`` maps
    ``"source"`` and ``"destination"`` to their connected intervals.
    """

    start: float
    end: float
    now: float
    lifetime_end: float
    ended: float | None
    ended_how: str | None
    connected: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    marks: list[Mark] = field(default_factory=list)

    def fraction(self, when: float) -> float:
        """Where ``when`` falls in the view, from 0.0 to 1.0."""
        span = self.end - self.start
        return min(1.0, max(0.0, (when - self.start) / span))


def lanes(
    tunnel: Tunnel,
    events: Sequence[tuple[float, str]],
    now: float,
    notifications: Iterable[Notification] = (),
) -> Lanes:
    """Lay out ``tunnel``'s ``events`` (``(time, text)``, oldest first) at time ``now``."""
    start = tunnel.created_at
    ended = tunnel.ended_at(now)
    ended_how = None
    if ended is not None:
        ended_how = (
            "closed" if tunnel.closed_at is not None and tunnel.closed_at == ended else "expired"
        )
    stop = ended if ended is not None else now
    connected: dict[str, list[tuple[float, float]]] = {"source": [], "destination": []}
    since: dict[str, float | None] = {"source": None, "destination": None}
    marks: list[Mark] = []
    for when, text in events:
        side, _, rest = text.partition(" ")
        if side in since:
            verb, _, detail = rest.partition(" ")
            if verb == "connected":
                since[side] = when
            elif verb == "disconnected":
                opened = since[side]
                if opened is not None:
                    connected[side].append((opened, when))
                since[side] = None
                if detail:
                    marks.append(Mark(when, side, detail.strip("()"), "disconnected"))
            elif verb.startswith("refused"):
                marks.append(Mark(when, side, f"refused {detail}".strip(), "refused"))
        elif side == "rotated":
            marks.append(Mark(when, "tunnel", text, "rotated"))
        elif side in ("closed", "expired"):
            marks.append(Mark(when, "tunnel", text, side))
    for side, opened in since.items():
        if opened is not None:
            connected[side].append((opened, max(opened, stop)))
    for note in notifications:
        if note.tunnel_id == tunnel.tunnel_id:
            marks.append(Mark(note.published_at, "device", f"notify ({note.reason})", "notified"))
    if ended is not None and not any(m.kind in ("closed", "expired") for m in marks):
        marks.append(Mark(ended, "tunnel", ended_how or "closed", ended_how or "closed"))
    last = max([stop, start + 1.0, *(m.time for m in marks)])
    end = last
    if ended is None and tunnel.expires_at - start <= 2 * (last - start):
        end = tunnel.expires_at  # the whole lifetime fits: show it
    marks.sort(key=lambda mark: mark.time)
    return Lanes(start, end, now, tunnel.expires_at, ended, ended_how, connected, marks)


def _step(span: float, most: int) -> int:
    for step in _NICE_STEPS:
        if span / step <= most:
            return step
    return _NICE_STEPS[-1] * (int(span / (_NICE_STEPS[-1] * most)) + 1)


def _offset(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"+{hours}h{minutes:02d}m" if minutes else f"+{hours}h"
    if minutes:
        return f"+{minutes}m{secs:02d}s" if secs else f"+{minutes}m"
    return f"+{secs}s"


# -- SVG ------------------------------------------------------------------------

_W, _X0, _X1 = 680, 96, 660
_LANE_Y = {"tunnel": 26, "source": 50, "destination": 74, "device": 98}
_LANE_H = 14
_COLOURS = {
    "open": "#1a7f37",
    "ended": "#afb8c1",
    "planned": "#d0d7de",
    "connected": "#0969da",
    "rotated": "#8250df",
    "closed": "#cf222e",
    "expired": "#bc4c00",
    "notified": "#9a6700",
    "refused": "#cf222e",
    "disconnected": "#57606a",
}
_CHAR_W = 6.2


def svg(view: Lanes) -> str:
    """The picture as an inline ``<svg>``: lanes, intervals, marks and their labels."""

    def x(when: float) -> float:
        return _X0 + view.fraction(when) * (_X1 - _X0)

    parts: list[str] = []
    span = view.end - view.start
    step = _step(span, 6)
    tick = 0.0
    while tick <= span + 1e-9:
        tx = x(view.start + tick)
        parts.append(f'<line x1="{tx:.1f}" y1="16" x2="{tx:.1f}" y2="112" stroke="#eaeef2"/>')
        parts.append(
            f'<text x="{tx:.1f}" y="12" text-anchor="middle" fill="#57606a">'
            f"{escape(_offset(tick))}</text>"
        )
        tick += step
    for name, y in _LANE_Y.items():
        parts.append(
            f'<text x="4" y="{y + 11}" fill="#24292f">{name}</text>'
            f'<line x1="{_X0}" y1="{y + _LANE_H / 2}" x2="{_X1}" y2="{y + _LANE_H / 2}" '
            'stroke="#eaeef2"/>'
        )
    # The tunnel's lifetime: open part solid, ended part grey, planned rest faint.
    y = _LANE_Y["tunnel"]
    stop = view.ended if view.ended is not None else min(view.now, view.end)
    parts.append(_rect(x(view.start), x(stop), y, _COLOURS["open"], "lifetime open"))
    if view.ended is None and view.lifetime_end > stop:
        parts.append(_rect(x(stop), x(view.lifetime_end), y, _COLOURS["planned"], "lifetime left"))
        if view.lifetime_end > view.end:
            parts.append(f'<text x="{_X1 + 2}" y="{y + 11}" fill="#57606a">&#8594;</text>')
    for side in ("source", "destination"):
        for begin, finish in view.connected.get(side, []):
            parts.append(
                _rect(
                    x(begin), x(finish), _LANE_Y[side], _COLOURS["connected"], f"{side} connected"
                )
            )
    rows: list[float] = []  # right edge of the last label in each label row
    for mark in view.marks:
        mx = x(mark.time)
        colour = _COLOURS.get(mark.kind, "#24292f")
        ly = _LANE_Y[mark.lane]
        if mark.kind in ("rotated", "closed", "expired"):
            parts.append(
                f'<line class="mark-{mark.kind}" x1="{mx:.1f}" y1="20" x2="{mx:.1f}" y2="112" '
                f'stroke="{colour}" stroke-width="2" stroke-dasharray="4 2"/>'
            )
        else:
            parts.append(
                f'<circle class="mark-{mark.kind}" cx="{mx:.1f}" cy="{ly + _LANE_H / 2}" r="4" '
                f'fill="{colour}"/>'
            )
        label = f"{_offset(mark.time - view.start)} {mark.label}"
        width = len(label) * _CHAR_W
        left = min(mx, _W - width - 2)
        row = next((i for i, edge in enumerate(rows) if edge < left), None)
        if row is None:
            rows.append(0.0)
            row = len(rows) - 1
        rows[row] = left + width + 8
        ty = 128 + row * 14
        parts.append(
            f'<line x1="{mx:.1f}" y1="{ly + _LANE_H:.0f}" x2="{left + 2:.1f}" y2="{ty - 10}" '
            f'stroke="{colour}" stroke-width="0.5"/>'
            f'<text class="label-{mark.kind}" x="{left:.1f}" y="{ty}" fill="{colour}">'
            f"{escape(label)}</text>"
        )
    height = 128 + len(rows) * 14 + 4
    return (
        f'<svg class="securetunnel-timeline-svg" xmlns="http://www.w3.org/2000/svg" '
        f'width="{_W}" height="{height}" viewBox="0 0 {_W} {height}" '
        'font-family="system-ui, sans-serif" font-size="11" role="img">' + "".join(parts) + "</svg>"
    )


def _rect(left: float, right: float, y: float, colour: str, title: str) -> str:
    width = max(2.0, right - left)
    return (
        f'<rect class="{escape(title.replace(" ", "-"))}" x="{left:.1f}" y="{y}" '
        f'width="{width:.1f}" height="{_LANE_H}" rx="2" fill="{colour}"/>'
    )


# -- text -----------------------------------------------------------------------


def text_chart(view: Lanes, width: int = 48) -> list[str]:
    """The picture as fixed-width lines: ``=`` open, ``-`` lifetime left, ``#`` connected,
    ``|`` a rotation, ``X`` the close or expiry, ``*`` a notification, ``!`` a refusal.
    """

    def col(when: float) -> int:
        return min(width - 1, int(view.fraction(when) * (width - 1) + 0.5))

    rows = {name: [" "] * width for name in LANE_NAMES}
    stop = view.ended if view.ended is not None else min(view.now, view.end)
    for c in range(col(view.start), col(stop) + 1):
        rows["tunnel"][c] = "="
    if view.ended is None:
        for c in range(col(stop) + 1, col(view.lifetime_end) + 1):
            rows["tunnel"][c] = "-"
    for side in ("source", "destination"):
        for begin, finish in view.connected.get(side, []):
            for c in range(col(begin), col(finish) + 1):
                rows[side][c] = "#"
    symbols = {"rotated": "|", "closed": "X", "expired": "X", "notified": "*", "refused": "!"}
    for mark in view.marks:
        symbol = symbols.get(mark.kind)
        if symbol is not None:
            rows[mark.lane][col(mark.time)] = symbol
    span = view.end - view.start
    axis = f"{_offset(0)}".ljust(width - len(_offset(span))) + _offset(span)
    lines = [f"{'':<12}{axis}"]
    for name in LANE_NAMES:
        suffix = ""
        if name == "tunnel" and view.lifetime_end > view.end and view.ended is None:
            suffix = f" -> expires {_offset(view.lifetime_end - view.start)}"
        lines.append(f"{name:<12}{''.join(rows[name]).rstrip()}{suffix}")
    return lines
