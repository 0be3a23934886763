"""Agents now: :class:`AgentNow` of :func:`.live.live_state`, one per agent, from the
agents and held-conversations queries of :mod:`.live_sql` and the capacity units of
:mod:`.live_units`. :mod:`.live`'s docstring defines each figure.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from omniroute.engine.policy import CHANNEL_CLASS, Policy

from .live_sql import AGENTS_SQL, HELD_SQL, rows, utc
from .live_units import held_legs, units_used

__all__ = ["AgentNow", "agents_now"]


@dataclass(frozen=True)
class AgentNow:
    """One agent now: status, what they hold and the capacity units it takes (:mod:`.live`'s
    docstring defines each figure)."""

    tenant: str
    agent_id: str
    name: str | None
    kind: str
    status: str
    since: dt.datetime
    in_status_s: float
    not_responding: bool
    conversations: tuple[str, ...]
    legs: int
    units_used: int
    units_budget: int


def agents_now(
    con: duckdb.DuckDBPyConnection, policy: Policy, params: Mapping[str, Any]
) -> tuple[AgentNow, ...]:
    """Every agent not removed (narrowed by ``params``' queue and channel), in order."""
    as_of: dt.datetime = params["as_of"]
    queue, channel = params["queue"], params["channel"]
    held: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows(con, HELD_SQL, params):
        held.setdefault((r["tenant"], r["agent_id"]), []).append(r)
    out = []
    for a in rows(con, AGENTS_SQL, params):
        key = (a["tenant"], a["agent_id"])
        mine = sorted(held.get(key, ()), key=lambda h: (h["conversation_id"], h["role"]))
        if (queue is not None or channel is not None) and not (
            _can_serve(policy, a, queue, channel)
            or any(
                (queue is None or h["queue"] == queue)
                and (channel is None or any(g["channel"] == channel for g in h["legs"]))
                for h in mine
            )
        ):
            continue
        profile = policy.profiles.get(a["profile"] or "")
        out.append(
            AgentNow(
                tenant=a["tenant"],
                agent_id=a["agent_id"],
                name=a["name"],
                kind=a["kind"],
                status=a["state"],
                since=utc(a["start_at"]),
                in_status_s=(as_of - a["start_at"]).total_seconds(),
                not_responding=a["state"] == "not_responding",
                conversations=tuple(sorted({h["conversation_id"] for h in mine})),
                legs=sum(held_legs(h) for h in mine),
                units_used=units_used(policy, a["profile"], mine, as_of),
                units_budget=profile.budget if profile is not None else 0,
            )
        )
    out.sort(key=lambda x: (x.tenant, x.agent_id))
    return tuple(out)


def _can_serve(
    policy: Policy, agent: Mapping[str, Any], queue: str | None, channel: str | None
) -> bool:
    """Could the agent be given work of ``queue`` and ``channel``: the queue's skills (at
    level 1 or more: its widest ring), a profile that holds the channel's class."""
    if queue is not None:
        skills = json.loads(agent["skills"] or "{}")
        needed = policy.queues.get(queue)
        if needed is None or any(skills.get(s, 0) < 1 for s in needed.skills):
            return False
    if channel is not None:
        limits = policy.profiles.get(agent["profile"] or "")
        cls = CHANNEL_CLASS.get(channel)  # type: ignore[call-overload]
        if limits is None or cls not in limits.classes:
            return False
    return True
