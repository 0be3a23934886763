"""Compare two projection databases: the same arrivals routed under two policies.

:func:`compare` reads each database with the report's own queries
(:func:`~omniroute.adapters.reporting.report.service_report` for contacts, service level,
abandonment and waits, :func:`~omniroute.adapters.reporting.report.agent_report` for each agent's
busy and staffed time) and returns a :class:`Comparison`: a :class:`Side` per
database and the differences B - A. :func:`format_comparison` renders it side by side;
:meth:`Comparison.to_dict` gives a JSON-able dict.

The definitions are the report's (DESIGN.md §7): waits from first contact to the first
human answer for real-time contacts, first replies (to the agent's first reply) for
asynchronous ones (messaging, email, social), whose service level is measured there;
nearest-rank percentiles, service level = met / measured, not met = measured - met
(the SLA breaches: abandons after the short-abandon threshold, contacts unreplied or
still waiting past their target included). Occupancy is a
human agent's busy / staffed time (available or busy) over the whole database; its
spread is over the human agents with staffed time (standard deviation of the
population, nearest-rank percentiles).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np

from omniroute.engine.policy import CHANNEL_CLASS, REPLY_CLASSES

from .report import ReportError, agent_report, service_report
from .table import format_cell, jsonable
from .writer import connect_readonly

__all__ = [
    "ChannelLevel",
    "Comparison",
    "Side",
    "Spread",
    "compare",
    "format_comparison",
    "summarize",
]


@dataclass(frozen=True)
class Spread:
    """How per-agent occupancy is spread over the human agents with staffed time;
    ``overall`` is their busy time over their staffed time, all together."""

    agents: int
    overall: float | None
    mean: float | None
    stdev: float | None
    min: float | None
    p10: float | None
    p50: float | None
    p90: float | None
    max: float | None


@dataclass(frozen=True)
class ChannelLevel:
    """One channel's contacts, measured contacts, those not met (SLA breaches), service
    level and longest time to the answer; ``first_reply``: an asynchronous channel, whose
    answer (and so its service level and ``max_wait_s``) is the agent's first reply."""

    contacts: int
    measured: int
    not_met: int
    service_level: float | None
    max_wait_s: float | None
    first_reply: bool


@dataclass(frozen=True)
class Side:
    """The figures of one database (one tenant)."""

    label: str
    db: str
    tenant: str
    contacts: int
    answered: int
    measured: int
    met: int
    not_met: int
    service_level: float | None
    abandoned: int
    abandon_rate: float | None
    p50_wait_s: float | None
    p90_wait_s: float | None
    p99_wait_s: float | None
    p50_first_reply_s: float | None
    p90_first_reply_s: float | None
    p99_first_reply_s: float | None
    occupancy: Spread
    channels: dict[str, ChannelLevel]


@dataclass(frozen=True)
class Comparison:
    """Two sides and what differs; ``notes`` say what makes them hard to compare."""

    a: Side
    b: Side
    notes: tuple[str, ...] = ()

    @property
    def difference(self) -> dict[str, Any]:
        """B - A for every number (None where either side has none); per channel too."""
        return _difference(_numbers(self.a), _numbers(self.b))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: both sides, the differences and the notes."""
        return {
            "a": jsonable(dataclasses.asdict(self.a)),
            "b": jsonable(dataclasses.asdict(self.b)),
            "difference": jsonable(self.difference),
            "notes": list(self.notes),
        }


def _numbers(side: Side) -> dict[str, Any]:
    out = dataclasses.asdict(side)
    for key in ("label", "db", "tenant"):
        del out[key]
    return out


def _difference(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dict.fromkeys([*a, *b]):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) or isinstance(y, dict):
            out[key] = _difference(x or {}, y or {})
        elif isinstance(x, bool) or isinstance(y, bool):
            out[key] = None
        elif isinstance(x, int | float) and isinstance(y, int | float):
            out[key] = y - x
        else:
            out[key] = None
    return out


# --- reading a database ----------------------------------------------------------------------


def _tenant_of(con: duckdb.DuckDBPyConnection, tenant: str | None) -> str:
    if tenant is not None:
        return tenant
    found = sorted(
        str(r[0])
        for r in con.execute(
            "SELECT DISTINCT tenant FROM interactions UNION SELECT DISTINCT tenant FROM agents"
        ).fetchall()
    )
    if len(found) > 1:
        raise ReportError(f"the database holds several tenants ({', '.join(found)}); name one")
    return found[0] if found else ""


def _spread(values: Sequence[float], busy_s: float, staffed_s: float) -> Spread:
    if not values:
        return Spread(0, None, None, None, None, None, None, None, None)
    v = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = (float(q) for q in np.percentile(v, (10, 50, 90), method="inverted_cdf"))
    overall = busy_s / staffed_s if staffed_s > 0 else None
    return Spread(len(v), overall, float(v.mean()), float(v.std()), float(v.min()), p10, p50,
                  p90, float(v.max()))  # fmt: skip


def summarize(
    con: duckdb.DuckDBPyConnection, *, label: str = "", db: str = "", tenant: str | None = None
) -> Side:
    """The figures of one tenant (``None``: the only one) of an open database."""
    tenant = _tenant_of(con, tenant)
    total: dict[str, Any] = {}
    channels: dict[str, ChannelLevel] = {}
    for r in service_report(con, ("channel",)).records():
        if r["tenant"] != tenant:
            continue
        if r["channel"] == "all":
            total = r
        else:
            first_reply = CHANNEL_CLASS.get(r["channel"]) in REPLY_CLASSES
            channels[r["channel"]] = ChannelLevel(
                r["contacts"], r["measured"], r["not_met"], r["service_level"],
                r["max_first_reply_s"] if first_reply else r["max_wait_s"], first_reply,
            )  # fmt: skip
    occupancy: list[float] = []
    busy = staffed = 0.0
    for r in agent_report(con).records():
        if r["tenant"] == tenant and r["kind"] == "human" and r["staffed_s"] > 0:
            occupancy.append(float(r["occupancy"]))
            busy += float(r["busy_s"])
            staffed += float(r["staffed_s"])
    return Side(
        label=label, db=db, tenant=tenant,
        contacts=int(total.get("contacts", 0)), answered=int(total.get("answered", 0)),
        measured=int(total.get("measured", 0)), met=int(total.get("met", 0)),
        not_met=int(total.get("not_met", 0)),
        service_level=total.get("service_level"), abandoned=int(total.get("abandoned", 0)),
        abandon_rate=total.get("abandon_rate"), p50_wait_s=total.get("p50_wait_s"),
        p90_wait_s=total.get("p90_wait_s"), p99_wait_s=total.get("p99_wait_s"),
        p50_first_reply_s=total.get("p50_first_reply_s"),
        p90_first_reply_s=total.get("p90_first_reply_s"),
        p99_first_reply_s=total.get("p99_first_reply_s"),
        occupancy=_spread(occupancy, busy, staffed), channels=channels,
    )  # fmt: skip


def compare(
    db_a: str | Path,
    db_b: str | Path,
    labels: tuple[str, str] = ("A", "B"),
    *,
    tenant: str | None = None,
) -> Comparison:
    """Compare two projection databases (``tenant``: None for the only one of each)."""
    sides = []
    for path, label in zip((db_a, db_b), labels, strict=True):
        con = connect_readonly(path)
        try:
            sides.append(summarize(con, label=label, db=str(path), tenant=tenant))
        finally:
            con.close()
    a, b = sides
    notes = []
    if a.tenant != b.tenant:
        notes.append(f"the tenants differ: {a.tenant!r} and {b.tenant!r}")
    if a.contacts != b.contacts:
        notes.append(
            f"the contacts differ ({a.contacts} and {b.contacts}): not the same arrivals, "
            "or a customer rejoined an open conversation in one run and not in the other"
        )
    return Comparison(a, b, tuple(notes))


# --- rendering -------------------------------------------------------------------------------

Kind = Literal["int", "pct", "secs"]


def _signed(value: float | None, kind: Kind) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{100 * value:+.1f} pp"
    if kind == "secs":
        return ("-" if value < 0 else "+") + format_cell(abs(value), "secs")
    return f"{int(value):+,d}"


def format_comparison(c: Comparison) -> list[str]:
    """Readable lines: one row per figure, a column per side and the difference B - A."""
    a, b = c.a, c.b
    rows: list[tuple[str, Any, Any, Kind] | str] = [
        ("contacts", a.contacts, b.contacts, "int"),
        ("answered", a.answered, b.answered, "int"),
        ("measured", a.measured, b.measured, "int"),
        ("in SLA", a.met, b.met, "int"),
        ("not met (SLA breaches)", a.not_met, b.not_met, "int"),
        ("service level", a.service_level, b.service_level, "pct"),
        ("abandoned", a.abandoned, b.abandoned, "int"),
        ("abandon rate", a.abandon_rate, b.abandon_rate, "pct"),
        ("p50 wait", a.p50_wait_s, b.p50_wait_s, "secs"),
        ("p90 wait", a.p90_wait_s, b.p90_wait_s, "secs"),
        ("p99 wait", a.p99_wait_s, b.p99_wait_s, "secs"),
        ("p50 first reply", a.p50_first_reply_s, b.p50_first_reply_s, "secs"),
        ("p90 first reply", a.p90_first_reply_s, b.p90_first_reply_s, "secs"),
        ("p99 first reply", a.p99_first_reply_s, b.p99_first_reply_s, "secs"),
        "occupancy of human agents",
        ("  agents logged in", a.occupancy.agents, b.occupancy.agents, "int"),
        ("  all together", a.occupancy.overall, b.occupancy.overall, "pct"),
    ]
    for name in ("mean", "stdev", "min", "p10", "p50", "p90", "max"):
        rows.append((f"  {name}", getattr(a.occupancy, name), getattr(b.occupancy, name), "pct"))
    rows.append("by channel (messaging, email, social: at the first reply)")
    for ch in dict.fromkeys([*a.channels, *b.channels]):
        x, y = a.channels.get(ch), b.channels.get(ch)
        ref = x if x is not None else y
        reply = ref is not None and ref.first_reply
        figures: tuple[tuple[str, str, Kind], ...] = (
            ("contacts", "contacts", "int"),
            ("not met", "not_met", "int"),
            ("max first reply" if reply else "max wait", "max_wait_s", "secs"),
            ("first-reply SL" if reply else "service level", "service_level", "pct"),
        )
        for label, field, kind in figures:
            rows.append((f"  {ch} {label}", getattr(x, field, None), getattr(y, field, None),
                         kind))  # fmt: skip
    cells = [("", a.label, b.label, f"{b.label} - {a.label}")]
    for row in rows:
        if isinstance(row, str):  # a section heading
            cells.append((row, "", "", ""))
            continue
        name, x, y, kind = row
        diff = y - x if x is not None and y is not None else None
        cells.append((name, format_cell(x, kind), format_cell(y, kind), _signed(diff, kind)))
    widths = [max(len(r[i]) for r in cells) for i in range(4)]
    lines = []
    for r in cells:
        values = [v.rjust(w) for v, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join([r[0].ljust(widths[0]), *values]).rstrip())
    tenant = a.tenant if a.tenant == b.tenant else f"{a.tenant} / {b.tenant}"
    return [
        f"comparison (tenant {tenant}): {a.label} = {a.db}, {b.label} = {b.db}",
        "",
        lines[0],
        "  ".join("-" * w for w in widths),
        *lines[1:],
        "",
        "Wait: first contact -> first human answer (calls, video, chat, tasks). First reply:",
        "first contact -> the agent's first reply (messaging, email, social; taken on but",
        "never replied to: not met). SL = in SLA / measured. Occupancy: a human agent's busy",
        "/ staffed time (available or busy); its spread is over the agents staffed (pp: points).",
        *(f"note: {n}" for n in c.notes),
    ]
