"""Plots of a projection database: service level, queue depth, waits and occupancy.

:func:`write_plots` writes four PNG files from a database written by
:class:`~.writer.Projector`. Each plot is a *data* function that
reads the database (the aggregation is done in SQL; the service level comes from
:func:`~.report.service_report`) and returns plain numpy arrays, and a
*drawing* function that turns that data into a :class:`matplotlib.figure.Figure`.
Only matplotlib's object-oriented API is used (no ``pyplot``, no global state), so the
functions are safe to call from any thread or library; the same database always gives
the same files.

The definitions are the projection's (DESIGN.md §7): waits run from the customer's
first contact to the first human answer; service level = answered within target /
measured, where measured also counts abandons after the short-abandon threshold and
conversations still waiting past their target. Times are UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt
from matplotlib import colormaps, ticker
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from omniroute.engine.events import CHANNELS
from omniroute.engine.policy import CHANNEL_CLASS

from .report import projection_info, service_report
from .table import format_seconds
from .writer import connect_readonly

__all__ = [
    "PLOT_FILES",
    "ChannelWaits",
    "OccupancyGrid",
    "QueueDepth",
    "ServiceLevelSeries",
    "draw_occupancy",
    "draw_queue_depth",
    "draw_service_level",
    "draw_waits",
    "occupancy_data",
    "queue_depth_data",
    "service_level_data",
    "waits_data",
    "write_plots",
]

PLOT_FILES = ("service_level.png", "queue_depth.png", "waits_by_channel.png", "occupancy.png")
"""The files :func:`write_plots` writes, in order."""

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Times = npt.NDArray[np.datetime64]

_DPI = 100
_MAX_SAMPLES = 2_000  # queue-depth samples when the step is chosen automatically
_CLASS_OF: dict[str, str] = {str(k): str(v) for k, v in CHANNEL_CLASS.items()}
_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(_CLASS_OF.values()))
_PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
            "tab:pink", "tab:gray", "tab:olive", "tab:cyan")  # fmt: skip
_CHANNEL_COLOR: dict[str, str] = {str(c): _PALETTE[i % 10] for i, c in enumerate(CHANNELS)}
# a media class has the colour of its first channel, so the plots agree
_CLASS_COLOR = {
    cls: _CHANNEL_COLOR[next(c for c in CHANNELS if _CLASS_OF[c] == cls)] for cls in _CLASSES
}
_MAIN_CLASS_SHARE = 0.05  # a class gets its own line with at least this share of contacts


# matplotlib.dates is untyped: typed handles on what is used
_date2num: Callable[[Any], Floats] = mdates.date2num
_AutoDateLocator: Callable[..., Any] = mdates.AutoDateLocator
_ConciseDateFormatter: Callable[..., Any] = mdates.ConciseDateFormatter


def _class_of(channel: str) -> str:
    return _CLASS_OF.get(channel, channel)


def _channel_color(channel: str) -> str:
    return _CHANNEL_COLOR.get(channel, "black")


def _class_color(cls: str) -> str:
    return _CLASS_COLOR.get(cls, "black")


def _order(names: Sequence[str], canonical: Sequence[str]) -> tuple[str, ...]:
    """``names`` deduplicated, in ``canonical`` order, unknown ones last (sorted)."""
    known = [n for n in canonical if n in names]
    return (*known, *sorted(set(names) - set(canonical)))


_EPOCH = dt.datetime(1970, 1, 1)


def _np_time(value: dt.datetime) -> np.datetime64:
    return np.datetime64(value, "ms")


# --- service level per interval ------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLevelSeries:
    """Service level per reporting interval and media class (all tenants together).

    ``starts`` are consecutive interval starts (an interval without contacts has zero
    counts); ``met``/``measured``/``contacts`` have one row per class in ``classes``.
    """

    interval_s: int
    starts: Times
    classes: tuple[str, ...]
    contacts: Ints
    measured: Ints
    met: Ints

    @property
    def service_level(self) -> Floats:
        """Per class and interval: met / measured (NaN where nothing was measured)."""
        return _ratio(self.met, self.measured)

    @property
    def overall(self) -> Floats:
        """Per interval, every channel: met / measured (NaN where nothing was measured)."""
        return _ratio(self.met.sum(axis=0), self.measured.sum(axis=0))


def _ratio(num: npt.NDArray[Any], den: npt.NDArray[Any]) -> Floats:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=np.asarray(den) > 0)
    return out


def service_level_data(
    con: duckdb.DuckDBPyConnection, *, interval_s: int | None = None
) -> ServiceLevelSeries:
    """Contacts, measured and met per media class and interval, from
    :func:`~.report.service_report` by channel and interval."""
    table = service_report(con, ("channel", "interval"), interval_s=interval_s)
    iv = int(interval_s or projection_info(con)["interval_s"])
    rows = [r for r in table.records() if isinstance(r["interval"], dt.datetime)]
    if not rows:
        empty = np.zeros((0, 0), dtype=np.int64)
        return ServiceLevelSeries(iv, np.array([], dtype="datetime64[ms]"), (), empty, empty,
                                  empty)  # fmt: skip
    classes = _order([_class_of(r["channel"]) for r in rows], _CLASSES)
    first = min(r["interval"] for r in rows)
    n = 1 + max(int((r["interval"] - first).total_seconds()) // iv for r in rows)
    starts = _np_time(first) + np.arange(n, dtype=np.int64) * np.timedelta64(iv, "s")
    counts = np.zeros((3, len(classes), n), dtype=np.int64)
    index = {c: i for i, c in enumerate(classes)}
    for r in rows:
        k = index[_class_of(r["channel"])]
        j = int((r["interval"] - first).total_seconds()) // iv
        counts[:, k, j] += (r["contacts"], r["measured"], r["met"])
    return ServiceLevelSeries(iv, starts, classes, counts[0], counts[1], counts[2])


def draw_service_level(
    data: ServiceLevelSeries, *, goal: float = 0.8, title: str | None = None
) -> Figure:
    """Lines: the service level of every channel and of the main media classes per
    interval, the goal as a dashed line; bars under it: the contacts measured."""
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
    for k, cls in enumerate(data.classes):
        n = int(data.measured[k].sum())
        if total and n / total >= _MAIN_CLASS_SHARE:
            top.plot(mid, sl[k], marker="o", markersize=3, linewidth=1.2, alpha=0.85,
                     color=_class_color(cls), label=f"{cls} ({n:,} measured)")  # fmt: skip
    top.plot(mid, data.overall, marker="o", markersize=4, linewidth=2.6, color="black",
             label=f"all channels ({total:,} measured)")  # fmt: skip
    top.axhline(goal, color="tab:red", linestyle="--", linewidth=1.5, label=f"goal {goal:.0%}")
    top.set_ylim(-0.02, 1.05)
    top.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    top.set_ylabel("service level")
    top.grid(True, alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, title="media class")
    top.set_title(
        "answered within target / measured (answered + abandoned after the short-abandon "
        "threshold + still waiting past target);\nwaits from first contact; a class with "
        f"under {_MAIN_CLASS_SHARE:.0%} of the contacts has no line of its own",
        fontsize=9, loc="left",
    )  # fmt: skip
    base = np.zeros(len(x))
    for k, cls in enumerate(data.classes):
        bottom.bar(x, data.measured[k], width=iv_days * 0.9, bottom=base, align="edge",
                   color=_class_color(cls), label=cls)  # fmt: skip
        base = base + data.measured[k]
    bottom.set_ylabel("contacts\nmeasured")
    bottom.grid(True, axis="y", alpha=0.3)
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, ncols=2)
    _time_axis(bottom, x[0], x[-1] + iv_days)
    fig.suptitle(heading, fontsize=13)
    return fig


# --- queue depth -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDepth:
    """Conversations waiting for an agent (in a queue or being offered), sampled every
    ``step_s`` at ``times``; ``waiting`` has one row per channel in ``channels``."""

    step_s: int
    times: Times
    channels: tuple[str, ...]
    waiting: Ints

    @property
    def total(self) -> Ints:
        return self.waiting.sum(axis=0) if len(self.channels) else np.zeros(len(self.times), int)


# A conversation's waiting spans: its queue and offer segments, merged where they touch or
# overlap (a queue segment ends when its offer starts); each span has the channel the
# conversation was on when it began to wait. A sweep (+1 at a start, -1 at an end) summed
# per channel gives the depth; an ASOF join reads it at each sample time t (start <= t < end).
_QUEUE_DEPTH = """
WITH s AS (
    SELECT tenant, conversation_id, seq, channel, start_at,
        coalesce(end_at, (SELECT epoch_ms(as_of_ms) FROM _projection_state)) AS end_at
    FROM segments WHERE kind IN ('queue', 'offer')
), edges AS (
    SELECT *, coalesce(start_at > max(end_at) OVER (
            PARTITION BY tenant, conversation_id ORDER BY start_at, seq
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), true) AS opens
    FROM s
), spans AS (
    SELECT arg_min(channel, start_at) AS channel, min(start_at) AS t0, max(end_at) AS t1
    FROM (SELECT *, sum(opens::INTEGER) OVER (PARTITION BY tenant, conversation_id
            ORDER BY start_at, seq ROWS UNBOUNDED PRECEDING) AS span FROM edges)
    GROUP BY tenant, conversation_id, span HAVING max(end_at) > min(start_at)
), depth AS (
    SELECT channel, t, sum(sum(d)) OVER (PARTITION BY channel ORDER BY t) AS n
    FROM (SELECT channel, t0 AS t, 1 AS d FROM spans
          UNION ALL SELECT channel, t1, -1 FROM spans)
    GROUP BY channel, t
), grid AS (
    SELECT unnest(generate_series($t0::TIMESTAMP, $t1::TIMESTAMP,
                                  to_seconds($step::BIGINT))) AS t
)
SELECT c.channel, g.t, coalesce(d.n, 0)::BIGINT AS n
FROM grid g CROSS JOIN (SELECT DISTINCT channel FROM spans) c
ASOF LEFT JOIN depth d ON d.channel = c.channel AND g.t >= d.t
ORDER BY c.channel, g.t
"""


def queue_depth_data(con: duckdb.DuckDBPyConnection, *, step_s: int | None = None) -> QueueDepth:
    """How many conversations wait for an agent at each ``step_s`` (default: every
    minute, coarser when the span would need more than 2,000 samples), per channel.

    Waiting = in a queue or being offered (a transfer's wait too); a conversation with
    a bot or scheduled for a callback is not waiting in a queue. Samples run from the
    first contact's minute to the end of the last wait."""
    if step_s is not None and step_s <= 0:
        raise ValueError(f"step_s must be positive, got {step_s}")
    span = con.execute(
        "SELECT min(first_contact_at), (SELECT max(coalesce(end_at, epoch_ms(p.as_of_ms))) "
        "FROM segments, _projection_state p WHERE kind IN ('queue', 'offer')) "
        "FROM interactions"
    ).fetchone()
    first, last = span if span is not None else (None, None)
    if first is None or last is None:
        return QueueDepth(step_s or 60, np.array([], dtype="datetime64[ms]"), (),
                          np.zeros((0, 0), dtype=np.int64))  # fmt: skip
    seconds = max((last - first).total_seconds(), 0.0)
    step = step_s or 60 * max(1, math.ceil(seconds / 60 / _MAX_SAMPLES))
    since_epoch = (first - _EPOCH).total_seconds()  # DuckDB's TIMESTAMP: naive UTC
    t0 = _EPOCH + dt.timedelta(seconds=since_epoch // step * step)
    res = con.execute(_QUEUE_DEPTH, {"t0": t0, "t1": max(last, t0), "step": step}).fetchnumpy()
    if not len(res["channel"]):  # every wait lasted no time
        n = math.floor(max((last - t0).total_seconds(), 0.0) / step) + 1
        times = _np_time(t0) + np.arange(n, dtype=np.int64) * np.timedelta64(step, "s")
        return QueueDepth(step, times, (), np.zeros((0, n), dtype=np.int64))
    n = int(np.count_nonzero(res["channel"] == res["channel"][0]))  # samples per channel
    names = [str(c) for c in res["channel"][::n]]
    channels = _order(names, CHANNELS)
    grid = np.asarray(res["n"], dtype=np.int64).reshape(len(names), n)
    times = np.asarray(res["t"][:n], dtype="datetime64[ms]")
    return QueueDepth(step, times, channels, grid[[names.index(c) for c in channels]])


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


# --- waits by channel ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelWaits:
    """One channel's waits: ``waits_s`` of its answered contacts (sorted), how many
    contacts were measured and met, and its SLA target (a range if its queues differ)."""

    channel: str
    waits_s: Floats
    contacts: int
    measured: int
    met: int
    abandoned: int
    target_lo_s: float
    target_hi_s: float

    @property
    def service_level(self) -> float:
        return self.met / self.measured if self.measured else math.nan

    def share_within(self, seconds: float | Floats) -> Floats:
        """Share of the measured contacts answered within ``seconds`` (an ECDF whose
        height at the target is the service level; abandons keep it under 100 %)."""
        found = np.searchsorted(self.waits_s, seconds, side="right")
        if not self.measured:
            return np.full(np.shape(found), np.nan)
        return np.asarray(found / self.measured, dtype=np.float64)


def waits_data(con: duckdb.DuckDBPyConnection) -> list[ChannelWaits]:
    """Per channel (by first channel, in :data:`CHANNELS` order): answered waits and
    the counts of :func:`~.report.service_report` by channel."""
    res = con.execute(
        "SELECT first_channel AS channel, wait_s FROM interactions "
        "WHERE first_answer_at IS NOT NULL ORDER BY first_channel, wait_s"
    ).fetchnumpy()
    chan = np.asarray(res["channel"], dtype=object)
    waits = np.asarray(res["wait_s"], dtype=np.float64)
    targets = {
        str(c): (float(lo), float(hi))
        for c, lo, hi in con.execute(
            "SELECT first_channel, min(sla_target_s), max(sla_target_s) FROM interactions "
            "GROUP BY ALL"
        ).fetchall()
    }
    counts: dict[str, list[int]] = {}  # summed over tenants
    for r in service_report(con, ("channel",)).records():
        if r["channel"] != "all":
            row = counts.setdefault(r["channel"], [0, 0, 0, 0])
            for k, name in enumerate(("contacts", "measured", "met", "abandoned")):
                row[k] += int(r[name])
    out = []
    for c in _order(list(counts), CHANNELS):
        contacts, measured, met, abandoned = counts[c]
        lo, hi = targets[c]
        out.append(ChannelWaits(c, waits[chan == c], contacts, measured, met, abandoned, lo, hi))
    return out


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
    """One panel per channel: the share of measured contacts answered within t (log t),
    the channel's SLA target (red, dashed) where the curve's height is the service level,
    and the goal (dotted)."""
    heading = _heading(title, "waits by channel: share of contacts answered within t")
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
            f"SL {sl} (target {target})\n{len(c.waits_s):,} answered, "
            f"{c.abandoned:,} abandoned\nof {c.measured:,} measured",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=8,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "linewidth": 0},
        )  # fmt: skip
        ax.set_title(f"{c.channel} ({_count(c.contacts, 'contact')})", color=color, fontsize=10)
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
        ax.set_xlabel("wait from first contact (log)")
    for ax in axes[:, 0]:
        ax.set_ylabel("answered within t")
    fig.suptitle(
        f"{heading}\nshare of measured contacts (answered + abandoned after the "
        f"short-abandon threshold + still waiting past target); red: SLA target; "
        f"dotted: goal {goal:.0%}; waits under {_MIN_WAIT_S:g}s drawn at {_MIN_WAIT_S:g}s",
        fontsize=10,
    )
    return fig


# --- agent occupancy -------------------------------------------------------------------------


@dataclass(frozen=True)
class OccupancyGrid:
    """Busy and staffed seconds per row and interval; a row is one agent, or
    ``agents_per_row`` consecutive agents (by tenant and id) when there are many."""

    interval_s: int
    starts: Times
    labels: tuple[str, ...]
    agents: int
    agents_per_row: int
    staffed_s: Floats
    busy_s: Floats

    @property
    def occupancy(self) -> Floats:
        """Busy / staffed time per row and interval (NaN where nobody was staffed)."""
        return _ratio(self.busy_s, self.staffed_s)


# The `occupancy` view (media class 'all'); agents with staffed time are numbered by tenant
# and id, and ``per`` consecutive ones (enough for at most $max_rows rows) make one row.
_OCCUPANCY = """
WITH o AS MATERIALIZED (
    SELECT tenant, agent_id, interval_start, staffed_s, busy_s FROM occupancy
    WHERE media_class = 'all' AND agent_kind = $kind
), n AS (
    SELECT tenant, agent_id, row_number() OVER (ORDER BY tenant, agent_id) - 1 AS i,
        CASE WHEN (SELECT count(DISTINCT tenant) FROM o) > 1 THEN tenant || '/' ELSE '' END
            || agent_id AS name,
        ceil(count(*) OVER () / $max_rows)::BIGINT AS per, count(*) OVER () AS agents
    FROM o GROUP BY tenant, agent_id HAVING sum(staffed_s) > 0
), a AS (
    SELECT *, i // per AS r FROM n
), rows AS (
    SELECT r, arg_min(name, i) AS first, arg_max(name, i) AS last, any_value(per) AS per,
        any_value(agents) AS agents
    FROM a GROUP BY r
), cells AS (
    SELECT r, interval_start, sum(staffed_s) AS staffed_s, sum(busy_s) AS busy_s
    FROM o JOIN a USING (tenant, agent_id) GROUP BY r, interval_start
)
SELECT * FROM cells JOIN rows USING (r) ORDER BY r, interval_start
"""


def occupancy_data(
    con: duckdb.DuckDBPyConnection, *, max_rows: int = 200, kind: str = "human"
) -> OccupancyGrid:
    """Busy and staffed time per agent (``kind``: human or bot) and reporting
    interval, from the ``occupancy`` view. With more than ``max_rows`` agents a row
    holds consecutive agents (by tenant and id) and sums their times: the row's
    occupancy is their joint busy / staffed time. Agents never staffed are left out."""
    if max_rows <= 0:
        raise ValueError(f"max_rows must be positive, got {max_rows}")
    iv = int(projection_info(con)["interval_s"])
    res = con.execute(_OCCUPANCY, {"kind": kind, "max_rows": max_rows}).fetchnumpy()
    if not len(res["r"]):
        empty = np.zeros((0, 0))
        return OccupancyGrid(iv, np.array([], dtype="datetime64[ms]"), (), 0, 1, empty, empty)
    per = int(res["per"][0])
    rows = np.asarray(res["r"], dtype=np.int64)
    at = np.asarray(res["interval_start"], dtype="datetime64[ms]")
    first = at.min()
    cols = ((at - first) // np.timedelta64(iv, "s")).astype(np.int64)
    shape = (int(rows.max()) + 1, int(cols.max()) + 1)
    staffed = np.zeros(shape)
    busy = np.zeros(shape)
    staffed[rows, cols] = res["staffed_s"]
    busy[rows, cols] = res["busy_s"]
    labels = [""] * shape[0]
    for r, a, b in zip(rows.tolist(), res["first"], res["last"], strict=True):
        labels[r] = str(a) if a == b else f"{a}-{b}"
    starts = first + np.arange(shape[1], dtype=np.int64) * np.timedelta64(iv, "s")
    return OccupancyGrid(iv, starts, tuple(labels), int(res["agents"][0]), per, staffed, busy)


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
) -> list[Path]:
    """Write :data:`PLOT_FILES` for the projection database ``db_path`` into
    ``out_dir`` (created if missing); return their paths. ``goal`` is the service-level
    goal (a share, 0.8 = 80 %); ``title`` prefixes every plot's title."""
    if not 0.0 <= goal <= 1.0:
        raise ValueError(f"goal is a share between 0 and 1, got {goal}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    con = connect_readonly(db_path)
    try:
        figures = [
            draw_service_level(service_level_data(con), goal=goal, title=title),
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
