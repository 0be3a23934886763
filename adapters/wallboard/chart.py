"""Today's service level per channel per interval, as an inline SVG (no library, no JS).

The x axis is the day of the state's ``as_of`` (00:00-24:00), the y axis 0-100 %; one
line per channel (per tenant and channel when several tenants show), broken where an
interval has no measured contact, with the latest value in the legend.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

from omniroute.adapters.reporting.live import IntervalLevel

__all__ = ["COLOURS", "level_chart"]

COLOURS: dict[str, str] = {
    "voice": "#4ea1ff",
    "video": "#b48cff",
    "webchat": "#3ddc97",
    "whatsapp": "#9be15d",
    "sms": "#ffd166",
    "messenger": "#ff8fab",
    "telegram": "#5ce1e6",
    "email": "#f4a261",
    "social": "#e76f51",
    "task": "#c0c7d1",
}
"""A line colour per channel (others take the spare colours in turn)."""
_SPARE = ("#ffffff", "#f15bb5", "#00bbf9", "#fee440", "#8ac926")

_W, _H = 760, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 128, 8, 20


def _naive(t: dt.datetime) -> dt.datetime:
    """UTC without a zone (DuckDB's timestamps are naive UTC)."""
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _x(hours: float) -> float:
    return _LEFT + (_W - _LEFT - _RIGHT) * hours / 24


def _y(level: float) -> float:
    return _TOP + (_H - _TOP - _BOTTOM) * (1 - level)


def _grid() -> list[str]:
    out = []
    for pct in (0, 25, 50, 75, 100):
        y = _y(pct / 100)
        out.append(
            f'<line class="gridline" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="axis" x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">{pct}%</text>'
        )
    for hour in range(0, 25, 3):
        x = _x(hour)
        out.append(
            f'<line class="gridline" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" y2="{_H - _BOTTOM}"/>'
        )
        out.append(
            f'<text class="axis" x="{x:.1f}" y="{_H - 6}" text-anchor="middle">{hour:02d}</text>'
        )
    return out


def _paths(points: Sequence[tuple[float, float | None]]) -> str:
    """An SVG path through the points, lifted over the ones with no value."""
    parts, run = [], 0
    for hours, level in [*points, (0.0, None)]:
        if level is None:
            if run == 1:  # a point alone: a dot (the line's round cap)
                parts.append("h0.1")
            run = 0
            continue
        parts.append(f"{'L' if run else 'M'}{_x(hours):.1f},{_y(level):.1f}")
        run += 1
    return " ".join(parts)


def level_chart(levels: Sequence[IntervalLevel], as_of: dt.datetime) -> str:
    """The SVG of ``levels`` over the day of ``as_of`` (an empty chart when none)."""
    midnight = _naive(as_of).replace(hour=0, minute=0, second=0, microsecond=0)
    tenants = {lv.tenant for lv in levels}
    lines: dict[str, list[tuple[float, float | None]]] = {}
    for lv in sorted(levels, key=lambda lv: (lv.tenant, lv.channel, _naive(lv.interval_start))):
        hours = (_naive(lv.interval_start) - midnight).total_seconds() / 3600
        if 0 <= hours < 24:
            name = lv.channel if len(tenants) <= 1 else f"{lv.tenant}/{lv.channel}"
            lines.setdefault(name, []).append((hours, lv.service_level))
    spare = iter(_SPARE * (1 + len(lines) // len(_SPARE)))
    out = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="service level per channel per interval today">',
        *_grid(),
    ]
    legend_y = _TOP + 10
    for name, points in lines.items():
        colour = COLOURS.get(name.rsplit("/", 1)[-1]) or next(spare)
        path = _paths(points)
        if path:
            out.append(f'<path class="line" d="{path}" stroke="{colour}"/>')
        latest = next((lv for _, lv in reversed(points) if lv is not None), None)
        value = "-" if latest is None else f"{100 * latest:.0f}%"
        x = _W - _RIGHT + 10
        out.append(
            f'<rect x="{x}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
            f'<text class="legend" x="{x + 15}" y="{legend_y + 1}">{escape(name)}'
            f'<tspan class="legend-value" x="{_W - 4}" text-anchor="end">{value}</tspan></text>'
        )
        legend_y += 15
    if not lines:
        out.append(
            f'<text class="empty" x="{(_W - _RIGHT + _LEFT) / 2}" y="{_H / 2}" '
            f'text-anchor="middle">no contacts today</text>'
        )
    out.append("</svg>")
    return "".join(out)
