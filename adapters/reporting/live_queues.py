"""Queues now: :class:`QueueNow` of :func:`.live.live_state`, one per tenant x queue x
channel, from the live, today's and load queries of :mod:`.live_sql` and the expected
wait of :mod:`.ewt`. :mod:`.live`'s docstring defines each figure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from omniroute.engine.policy import Policy, Queue

from .ewt import QueueLoad, estimate_wait
from .live_sql import LIVE_SQL, LOAD_SQL, TODAY_SQL, rows

__all__ = ["DEFAULT_GOAL", "EWT_WINDOW_S", "WARN_MARGIN", "QueueNow", "queues_now"]

DEFAULT_GOAL = 0.8
"""The service-level goal :func:`.live.live_state` compares with when none is given."""
WARN_MARGIN = 0.05
"""``sla_state`` is ``warn`` while the service level is less than this above the goal."""
EWT_WINDOW_S = 900.0
"""The window of the expected-wait ``departures`` (seconds)."""
_DEFAULT_QUEUE = Queue()


@dataclass(frozen=True)
class QueueNow:
    """One tenant x queue x channel now (:mod:`.live`'s docstring defines each figure)."""

    tenant: str
    queue: str
    channel: str
    waiting: int
    oldest_wait_s: float | None
    offered: int
    handling: int
    sla_target_s: float
    contacts_today: int
    answered_today: int
    abandoned_today: int
    service_level_today: float | None
    abandon_rate_today: float | None
    service_level_15m: float | None
    service_level_60m: float | None
    abandoned_15m: int
    abandoned_60m: int
    ewt_s: float | None
    sla_state: str


def queues_now(
    con: duckdb.DuckDBPyConnection, policy: Policy, params: Mapping[str, Any], goal: float
) -> tuple[QueueNow, ...]:
    """Every tenant x queue x channel with a contact today or a live one now, in order."""
    as_of: dt.datetime = params["as_of"]
    live = {(r["tenant"], r["queue"], r["channel"]): r for r in rows(con, LIVE_SQL, params)}
    today = {(r["tenant"], r["queue"], r["channel"]): r for r in rows(con, TODAY_SQL, params)}
    load = {(r["tenant"], r["queue"], r["channel"]): r for r in rows(con, LOAD_SQL, params)}
    out = []
    for key in sorted(set(live) | {k for k, r in today.items() if r["contacts"]}):
        t, q, ch = key
        lv, td, ld = live.get(key), today.get(key), load.get(key)
        waiting = int(lv["waiting"]) if lv else 0
        oldest = (as_of - lv["wait_from"]).total_seconds() if lv and lv["wait_from"] else None
        target = policy.queues.get(q, _DEFAULT_QUEUE).sla_for(ch)
        n = {k: int(v) for k, v in td.items() if isinstance(v, int)} if td else {}
        sl_today = _ratio(n.get("met", 0), n.get("measured", 0))
        sl_15m = _ratio(n.get("met_15m", 0), n.get("measured_15m", 0))
        ewt = estimate_wait(
            QueueLoad(
                ahead=waiting,
                agents=int(ld["agents"]) if ld else 0,
                mean_handle_s=ld["mean_handle_s"] if ld else None,
                departures=n.get("departures", 0),
                window_s=EWT_WINDOW_S,
            )
        )
        out.append(
            QueueNow(
                tenant=t,
                queue=q,
                channel=ch,
                waiting=waiting,
                oldest_wait_s=oldest,
                offered=int(lv["offered"]) if lv else 0,
                handling=int(lv["handling"]) if lv else 0,
                sla_target_s=float(target),
                contacts_today=n.get("contacts", 0),
                answered_today=n.get("answered", 0),
                abandoned_today=n.get("abandoned", 0),
                service_level_today=sl_today,
                abandon_rate_today=_ratio(
                    n.get("abandoned", 0), n.get("contacts", 0) - n.get("short_abandoned", 0)
                ),
                service_level_15m=sl_15m,
                service_level_60m=_ratio(n.get("met_60m", 0), n.get("measured_60m", 0)),
                abandoned_15m=n.get("abandoned_15m", 0),
                abandoned_60m=n.get("abandoned_60m", 0),
                ewt_s=ewt,
                sla_state=_sla_state(
                    sl_15m if sl_15m is not None else sl_today, oldest, target, goal
                ),
            )
        )
    return tuple(out)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _sla_state(
    service_level: float | None, oldest_wait_s: float | None, target_s: float, goal: float
) -> str:
    if oldest_wait_s is not None and oldest_wait_s > target_s:
        return "breach"
    if service_level is None:
        return "ok"
    if service_level < goal:
        return "breach"
    if service_level < goal + WARN_MARGIN:
        return "warn"
    return "ok"
