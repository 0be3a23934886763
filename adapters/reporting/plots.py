"""Plots of a projection database: service level, queue depth, waits and occupancy.

:func:`write_plots` writes four PNG files from a database written by
:class:`~.writer.Projector`. Each plot is a *data* function of
:mod:`.plot_data` that reads the database and returns plain numpy arrays, and a
*drawing* function here that turns that data into a :class:`matplotlib.figure.Figure`.
Only matplotlib's object-oriented API is used (no ``pyplot``, no global state), so the
functions are safe to call from any thread or library; the same database always gives
the same files.

The definitions are the projection's (DESIGN.md §7): waits run from the customer's
first contact to the first human answer, and for messaging, email and social to the
agent's first reply (a panel of such a channel says "first reply"); service level =
answered within target / measured, where measured also counts contacts taken on but
never replied to, abandons after the short-abandon threshold and conversations still
waiting past their target. Times are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps, ticker
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from omniroute.engine.events import CHANNELS

from .plot_data import (
    MEDIA_CLASSES,
    MIN_MEASURED,
    ChannelWaits,
    Floats,
    OccupancyGrid,
    QueueDepth,
    ServiceLevelSeries,
    media_class_of,
    occupancy_data,
    queue_depth_data,
    service_level_data,
    waits_data,
)
from .table import format_seconds
from .writer import connect_readonly

__all__ = [
    "PLOT_FILES",
    "draw_occupancy",
    "draw_queue_depth",
    "draw_service_level",
    "draw_waits",
    "write_plots",
]

PLOT_FILES = ("service_level.png", "queue_depth.png", "waits_by_channel.png", "occupancy.png")
"""The files :func:`write_plots` writes, in order."""

_DPI = 100
_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:gray", "tab:olive", "tab:cyan")  # fmt: skip
_CHANNEL_COLOR: dict[str, str] = {str(c): _PALETTE[i % 10] for i, c in enumerate(CHANNELS)}
# a media class has the colour of its first channel, so the plots agree
_CLASS_COLOR = {
    cls: _CHANNEL_COLOR[next(c for c in CHANNELS if media_class_of(c) == cls)]
    for cls in MEDIA_CLASSES
}
_MAIN_CLASS_SHARE = 0.05  # a class gets its own line with at least this share of contacts


# matplotlib.dates is untyped: typed handles on what is used
_date2num: Callable[[Any], Floats] = mdates.date2num
_AutoDateLocator: Callable[..., Any] = mdates.AutoDateLocator
_ConciseDateFormatter: Callable[..., Any] = mdates.ConciseDateFormatter


def _channel_color(channel: str) -> str:
    return _CHANNEL_COLOR.get(channel, "black")


def _class_color(cls: str) -> str:
    return _CLASS_COLOR.get(cls, "black")


def draw_service_level(
    data: ServiceLevelSeries,
    *,
    goal: float = 0.8,
    title: str | None = None,
    min_measured: int = MIN_MEASURED,
) -> Figure:
    """Lines: the service level of every channel and of the main media classes per
    interval, the goal as a dashed line; bars under it: the contacts measured.

    An interval with fewer than ``min_measured`` contacts measured (of the line's class,
    or of every channel) is not a point of its line: a hollow marker shows its value and
    its bar is hatched."""
    heading = _heading(title, f"service level per {_span(data.interval_s)} interval")
    if not data.classes:
        return _no_data(heading, "no contacts")
    fig = _figure(12, 7.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    iv_days = data.interval_s / 86_400
    x = _date2num(data.starts)
    mid = x + iv_days / 2
    total = int(data.measured.sum())
    sl = data.service_level
    shown = data.service_level_shown(min_measured)
    for k, cls in enumerate(data.classes):
        n = int(data.measured[k].sum())
        if total and n / total >= _MAIN_CLASS_SHARE:
            color = _class_color(cls)
            top.plot(mid, shown[k], marker="o", markersize=3, linewidth=1.2, alpha=0.85,
                     color=color, label=f"{cls} ({n:,} measured)")  # fmt: skip
            _few(top, mid, sl[k], data.measured[k], min_measured, color, 4)
    measured = data.measured.sum(axis=0)
    top.plot(mid, data.overall_shown(min_measured), marker="o", markersize=4, linewidth=2.6,
             color="black", label=f"all channels ({total:,} measured)")  # fmt: skip
    if _few(top, mid, data.overall, measured, min_measured, "black", 6):
        top.plot([], [], marker="o", markerfacecolor="none", linestyle="none", color="black",
                 label=f"under {min_measured} measured: no point")  # fmt: skip
    top.axhline(goal, color="tab:red", linestyle="--", linewidth=1.5, label=f"goal {goal:.0%}")
    top.set_ylim(-0.02, 1.05)
    top.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    top.set_ylabel("service level")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="media class")
    top.set_title(
        "answered within target / measured (answered + unreplied + abandoned after the "
        "short-abandon threshold + still waiting past target);\nwaits from each contact "
        "(messaging, email, social: to the first reply); a class with "
        f"under {_MAIN_CLASS_SHARE:.0%} of the contacts has no line of its own; an interval "
        f"with under {min_measured} measured has a hollow marker and a hatched bar",
        fontsize=9, loc="left",
    )  # fmt: skip
    base = np.zeros(len(x))
    for k, cls in enumerate(data.classes):
        bottom.bar(x, data.measured[k], width=iv_days * 0.9, bottom=base, align="edge",
                   color=_class_color(cls), label=cls)  # fmt: skip
        base = base + data.measured[k]
    sparse = (measured > 0) & (measured < min_measured)
    if sparse.any():
        bottom.bar(x[sparse], np.maximum(base[sparse], base.max() * 0.04),
                   width=iv_days * 0.9, align="edge", fill=False, hatch="///",
                   edgecolor="gray", linewidth=0)  # fmt: skip
    bottom.set_ylabel("contacts\nmeasured")
    bottom.grid(True, axis="y", alpha=0.3)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, ncols=2)
    _time_axis(bottom, x[0], x[-1] + iv_days)
    fig.suptitle(heading, fontsize=13)
    return fig


def _few(
    ax: Axes,
    x: Floats,
    values: Floats,
    measured: Any,
    min_measured: int,
    color: str,
    size: float,
) -> bool:
    """Hollow markers at the intervals with some, but under ``min_measured``, measured."""
    few = (np.asarray(measured) > 0) & (np.asarray(measured) < min_measured)
    if few.any():
        ax.plot(x[few], values[few], marker="o", markersize=size, markerfacecolor="none",
                linestyle="none", color=color, alpha=0.85)  # fmt: skip
    return bool(few.any())


def draw_queue_depth(data: QueueDepth, *, title: str | None = None) -> Figure:
    """Stacked areas: conversations waiting for an agent per channel over time."""
    heading = _heading(title, "conversations waiting for an agent")
    if not data.channels or not data.total.any():
        return _no_data(heading, "no conversation waited in a queue")
    fig = _figure(12, 6)
    ax = fig.subplots()
    x = _date2num(data.times)
    peaks = data.waiting.max(axis=1)
    shown = [k for k, p in enumerate(peaks) if p > 0]  # waits shorter than a step: not seen
    ax.stackplot(
        x, data.waiting[shown], labels=[f"{data.channels[k]} (peak {peaks[k]:,})" for k in shown],
        colors=[_channel_color(data.channels[k]) for k in shown], alpha=0.85, linewidth=0,
    )  # fmt: skip
    total = data.total
    peak = int(np.argmax(total))
    ax.plot(x, total, color="black", linewidth=0.8, label=f"all channels (peak {total[peak]:,})")
    ax.annotate(f"peak {total[peak]:,}", (x[peak], total[peak]), xytext=(0, 8),
                textcoords="offset points", ha="center", fontsize=9)  # fmt: skip
    ax.set_ylim(0, max(1.0, total[peak] * 1.12))
    ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    ax.set_ylabel("conversations waiting")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="channel")
    ax.set_title(
        f"in a queue or being offered (transfers included, bot and scheduled callbacks not), "
        f"stacked by channel, sampled every {_span(data.step_s)}",
        fontsize=9, loc="left",
    )  # fmt: skip
    _time_axis(ax, x[0], x[-1])
    fig.suptitle(heading, fontsize=13)
    return fig


_NICE_SECONDS = (0.1, 1, 10, 60, 600, 3600, 4 * 3600, 86_400, 7 * 86_400)
_MIN_WAIT_S = 0.1  # the log axis starts here; shorter waits are drawn at it


def _short_secs(value: float, _pos: object = None) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if value >= size:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def draw_waits(
    data: Sequence[ChannelWaits], *, goal: float = 0.8, title: str | None = None
) -> Figure:
    """One panel per channel: the share of measured contacts answered within t (log t;
    for messaging, email and social: replied to within t, the first reply), the
    channel's SLA target (red, dashed) where the curve's height is the service level,
    and the goal (dotted)."""
    heading = _heading(
        title, "waits and first replies by channel: share of contacts answered within t"
    )
    if not data:
        return _no_data(heading, "no contacts")
    ncols = min(len(data), 4)
    nrows = math.ceil(len(data) / ncols)
    fig = _figure(3.9 * ncols + 0.5, 3.1 * nrows + 1.2)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False))
    longest = max([c.target_hi_s for c in data] + [float(c.waits_s[-1]) for c in data
                                                    if len(c.waits_s)])  # fmt: skip
    right = max(longest * 2.0, 60.0)
    grid = np.geomspace(_MIN_WAIT_S, right, 400)
    for ax, c in zip(axes.flat, data, strict=False):
        color = _channel_color(c.channel)
        if len(c.waits_s) and c.measured:
            ax.step(grid, c.share_within(grid), where="post", color=color, linewidth=2)
        if c.target_lo_s == c.target_hi_s:
            ax.axvline(c.target_lo_s, color="tab:red", linestyle="--", linewidth=1.3)
            target = format_seconds(c.target_lo_s)
        else:
            ax.axvspan(c.target_lo_s, c.target_hi_s, color="tab:red", alpha=0.15)
            target = f"{format_seconds(c.target_lo_s)}-{format_seconds(c.target_hi_s)}"
        ax.axhline(goal, color="gray", linestyle=":", linewidth=1)
        sl = "-" if math.isnan(c.service_level) else f"{c.service_level:.0%}"
        ax.text(
            0.97, 0.04,
            f"{'first-reply ' if c.first_reply else ''}SL {sl} (target {target})\n"
            f"{len(c.waits_s):,} {'replied' if c.first_reply else 'answered'}, "
            f"{c.abandoned:,} abandoned\nof {c.measured:,} measured",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )  # fmt: skip
        what = ": first reply" if c.first_reply else ""
        ax.set_title(f"{c.channel}{what} ({_count(c.contacts, 'contact')})", color=color,
                     fontsize=10)  # fmt: skip
        ax.grid(True, alpha=0.3)
    for ax in axes.flat[len(data) :]:
        ax.set_axis_off()
    ax0 = axes.flat[0]
    ax0.set_xscale("log")
    ax0.set_xlim(_MIN_WAIT_S, right)
    ax0.set_ylim(0, 1.02)
    ax0.xaxis.set_major_locator(ticker.FixedLocator([s for s in _NICE_SECONDS if s <= right]))
    ax0.xaxis.set_major_formatter(ticker.FuncFormatter(_short_secs))
    ax0.xaxis.set_minor_locator(ticker.NullLocator())  # (log minor ticks: slow and busy)
    ax0.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    for ax in axes[-1]:
        ax.set_xlabel("wait or first reply from contact (log)")
    for ax in axes[:, 0]:
        ax.set_ylabel("answered within t")
    fig.suptitle(
        f"{heading}\nshare of measured contacts (answered + unreplied + abandoned after the "
        f"short-abandon threshold + still waiting past target); red: SLA target; "
        f"dotted: goal {goal:.0%}; waits under {_MIN_WAIT_S:g}s drawn at {_MIN_WAIT_S:g}s",
        fontsize=10,
    )
    return fig


def draw_occupancy(data: OccupancyGrid, *, title: str | None = None) -> Figure:
    """Heatmap: agents (rows) x intervals (columns), colour = busy / staffed time;
    grey where nobody in the row was staffed."""
    heading = _heading(title, f"agent occupancy per {_span(data.interval_s)} interval")
    if not data.labels:
        return _no_data(heading, "no agent was logged in")
    nrows = len(data.labels)
    fig = _figure(12, min(14.0, max(4.5, 2.2 + 0.16 * nrows)))
    ax = fig.subplots()
    occ = data.occupancy
    x0 = float(_date2num(data.starts[0]))
    x1 = x0 + len(data.starts) * data.interval_s / 86_400
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(
        np.ma.masked_invalid(occ), aspect="auto", interpolation="nearest", cmap=cmap,
        vmin=0.0, vmax=1.0, extent=(x0, x1, nrows - 0.5, -0.5),
    )  # fmt: skip
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("occupancy: busy / staffed time")
    bar.formatter = ticker.PercentFormatter(1.0)
    bar.update_ticks()
    labels = data.labels
    if nrows <= 40:
        ax.set_yticks(range(nrows), labels, fontsize=8 if nrows > 20 else 9)
    else:
        ax.yaxis.set_major_locator(ticker.MaxNLocator(nbins=25, integer=True))
        ax.yaxis.set_major_formatter(
            ticker.FuncFormatter(lambda v, _p: labels[int(v)] if 0 <= int(v) < nrows else "")
        )
        ax.tick_params(axis="y", labelsize=8)
    who = "agent" if data.agents_per_row == 1 else f"agents ({data.agents_per_row} per row)"
    ax.set_ylabel(who)
    _time_axis(ax, x0, x1)
    rows = "one row per agent" if data.agents_per_row == 1 else (
        f"each row sums {data.agents_per_row} consecutive agents (by id)"
    )  # fmt: skip
    ax.set_title(
        f"{data.agents:,} agents logged in; {rows}; busy = holding a conversation (handling or "
        f"wrap-up); staffed = available or busy; grey: not staffed",
        fontsize=9, loc="left",
    )  # fmt: skip
    fig.suptitle(heading, fontsize=13)
    return fig


# --- helpers and the whole set -----------------------------------------------------------


def _span(seconds: float) -> str:
    """A duration in words: 15 min, 1 h, 90 s."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _heading(title: str | None, what: str) -> str:
    return f"{title}: {what}" if title else what


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _no_data(heading: str, why: str) -> Figure:
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.text(0.5, 0.5, f"no data: {why}", ha="center", va="center", fontsize=14, color="gray",
            transform=ax.transAxes)  # fmt: skip
    fig.suptitle(heading, fontsize=13)
    return fig


def _time_axis(ax: Axes, left: float, right: float) -> None:
    locator = _AutoDateLocator(minticks=4, maxticks=12)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(_ConciseDateFormatter(locator, show_offset=True))
    ax.set_xlim(left, right if right > left else left + 1 / 24)
    ax.set_xlabel("time of day (UTC)")


def write_plots(
    db_path: str | Path,
    out_dir: str | Path,
    *,
    goal: float = 0.8,
    title: str | None = None,
    min_measured: int = MIN_MEASURED,
) -> list[Path]:
    """Write :data:`PLOT_FILES` for the projection database ``db_path`` into
    ``out_dir`` (created if missing); return their paths. ``goal`` is the service-level
    goal (a share, 0.8 = 80 %); ``title`` prefixes every plot's title; an interval with
    fewer than ``min_measured`` contacts measured gets no service-level point."""
    if not 0.0 <= goal <= 1.0:
        raise ValueError(f"goal is a share between 0 and 1, got {goal}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connect_readonly(db_path)
    try:
        figures = [
            draw_service_level(
                service_level_data(con), goal=goal, title=title, min_measured=min_measured
            ),
            draw_queue_depth(queue_depth_data(con), title=title),
            draw_waits(waits_data(con), goal=goal, title=title),
            draw_occupancy(occupancy_data(con), title=title),
        ]
    finally:
        con.close()
    paths = []
    for name, fig in zip(PLOT_FILES, figures, strict=True):
        path = out / name
        fig.savefig(path, dpi=_DPI, metadata={"Software": None})
        paths.append(path)
    return paths
