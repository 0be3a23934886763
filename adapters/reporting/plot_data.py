"""The data of the plots: what each figure of :mod:`.plots` shows, read from a projection
database as plain numpy arrays (no matplotlib here).

Each ``*_data`` function takes a read-only connection (:func:`~.writer.connect_readonly`);
the aggregation is done in SQL, the service level comes from
:func:`~.report.service_report`. The definitions are the projection's (DESIGN.md §7):
waits run from the customer's first contact to the first human answer, and for
messaging, email and social to the agent's first reply; service level = answered within
target / measured. Times are UTC.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import numpy.typing as npt

from omniroute.engine.events import CHANNELS
from omniroute.engine.policy import CHANNEL_CLASS, REPLY_CLASSES

from .report import projection_info, service_report

__all__ = [
    "MEDIA_CLASSES",
    "MIN_MEASURED",
    "ChannelWaits",
    "Floats",
    "Ints",
    "OccupancyGrid",
    "QueueDepth",
    "ServiceLevelSeries",
    "Times",
    "media_class_of",
    "occupancy_data",
    "queue_depth_data",
    "service_level_data",
    "waits_data",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Times = npt.NDArray[np.datetime64]
MIN_MEASURED = 5
"""An interval with fewer contacts measured than this has no service-level point of its
own: two contacts answered in time are not a 100 % interval (the plots mark it)."""
_MAX_SAMPLES = 2_000  # queue-depth samples when the step is chosen automatically
_CLASS_OF: dict[str, str] = {str(k): str(v) for k, v in CHANNEL_CLASS.items()}
MEDIA_CLASSES: tuple[str, ...] = tuple(dict.fromkeys(_CLASS_OF.values()))
"""The media classes, in the engine's order."""


def media_class_of(channel: str) -> str:
    """The media class of a channel (the channel itself when it has none)."""
    return _CLASS_OF.get(channel, channel)


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

    def service_level_shown(self, min_measured: int = MIN_MEASURED) -> Floats:
        """:attr:`service_level`, NaN where fewer than ``min_measured`` were measured."""
        return np.where(self.measured >= min_measured, self.service_level, np.nan)

    def overall_shown(self, min_measured: int = MIN_MEASURED) -> Floats:
        """:attr:`overall`, NaN where fewer than ``min_measured`` were measured."""
        return np.where(self.measured.sum(axis=0) >= min_measured, self.overall, np.nan)


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
    classes = _order([media_class_of(r["channel"]) for r in rows], MEDIA_CLASSES)
    first = min(r["interval"] for r in rows)
    n = 1 + max(int((r["interval"] - first).total_seconds()) // iv for r in rows)
    starts = _np_time(first) + np.arange(n, dtype=np.int64) * np.timedelta64(iv, "s")
    counts = np.zeros((3, len(classes), n), dtype=np.int64)
    index = {c: i for i, c in enumerate(classes)}
    for r in rows:
        k = index[media_class_of(r["channel"])]
        j = int((r["interval"] - first).total_seconds()) // iv
        counts[:, k, j] += (r["contacts"], r["measured"], r["met"])
    return ServiceLevelSeries(iv, starts, classes, counts[0], counts[1], counts[2])


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


# --- waits by channel ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelWaits:
    """One channel's waits: ``waits_s`` of its answered contacts (sorted), how many
    contacts were measured and met, and its SLA target (a range if its queues differ).
    ``first_reply``: an asynchronous channel, whose waits run to the first reply."""

    channel: str
    waits_s: Floats
    contacts: int
    measured: int
    met: int
    abandoned: int
    target_lo_s: float
    target_hi_s: float
    first_reply: bool

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
    """Per channel (each contact, a leg, under its own channel, in :data:`CHANNELS`
    order): answered waits (first replies for messaging, email and social) and the
    counts of :func:`~.report.service_report` by channel."""
    res = con.execute(
        "SELECT channel, wait_s FROM legs WHERE answered_at IS NOT NULL ORDER BY channel, wait_s"
    ).fetchnumpy()
    chan = np.asarray(res["channel"], dtype=object)
    waits = np.asarray(res["wait_s"], dtype=np.float64)
    targets = {
        str(c): (float(lo), float(hi))
        for c, lo, hi in con.execute(
            "SELECT channel, min(sla_target_s), max(sla_target_s) FROM legs GROUP BY ALL"
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
        reply = media_class_of(c) in REPLY_CLASSES
        out.append(ChannelWaits(c, waits[chan == c], contacts, measured, met, abandoned, lo, hi,
                                reply))  # fmt: skip
    return out


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
