"""The fold of agents: registration, presence, capacity profile, status intervals.

An agent's status intervals (``agent_states``) follow their presence and the engine's
``AgentNotResponding``; an agent who goes offline or is removed hands back what they
hold (a wrap-up just ends).
"""

from __future__ import annotations

import msgspec

from omniroute.engine.events import (
    AgentNotResponding,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
)

from .ledger import Handler, Ledger
from .records import NONE, Agent

__all__ = ["DECISIONS", "INPUTS"]

_json = msgspec.json.Encoder().encode


def _not_responding(lg: Ledger, d: AgentNotResponding, ts: int) -> None:
    a = lg.agent(d.tenant, d.agent_id)
    a.responsive = False
    lg.touch_agent(a)
    if a.status == "available":
        lg.set_state(a, "not_responding", ts)


def _registered(lg: Ledger, e: AgentRegistered, ts: int) -> None:
    t = lg.tenant(e.tenant)
    a = t.agents.get(e.agent_id)
    if a is not None and a.removed < 0 and a.registered >= 0:
        return
    if a is None:
        a = t.agents[e.agent_id] = Agent(tenant=e.tenant, agent_id=e.agent_id)
    default = lg.policy.bot_profile if e.kind == "bot" else lg.policy.human_profile
    a.kind = e.kind
    a.name = e.name
    a.profile = e.capacity_profile or default
    a.skills = _json(e.skills).decode()
    a.registered = ts
    a.removed = NONE
    a.status = "offline"
    a.responsive = True
    a.holding = []
    a.state_start = NONE
    lg.set_state(a, "offline", ts)


def _updated(lg: Ledger, e: AgentUpdated, ts: int) -> None:
    a = lg.agent(e.tenant, e.agent_id)
    if e.skills is not None:
        a.skills = _json(e.skills).decode()
    if e.capacity_profile is not None:
        a.profile = e.capacity_profile
    lg.touch_agent(a)


def _status(lg: Ledger, e: AgentStatusChanged, ts: int) -> None:
    a = lg.agent(e.tenant, e.agent_id)
    if a.removed >= 0:
        return
    a.status = e.status
    if e.status == "available":
        a.responsive = True
        lg.set_state(a, "available", ts)
        return
    lg.set_state(a, e.status, ts)
    if e.status == "offline":
        _hand_back(lg, a, ts, "agent_offline")


def _removed(lg: Ledger, e: AgentRemoved, ts: int) -> None:
    a = lg.agent(e.tenant, e.agent_id)
    if a.removed >= 0:
        return
    _hand_back(lg, a, ts, "agent_removed")
    lg.end_state(a, ts)
    a.state = "removed"
    a.status = "offline"
    a.removed = ts
    lg.touch_agent(a)


def _hand_back(lg: Ledger, a: Agent, ts: int, reason: str) -> None:
    """The agent leaves: what they hold goes back to the queue (wrap-ups just end)."""
    t = lg.tenant(a.tenant)
    for cid in list(a.holding):
        c = t.convs.get(cid)
        if c is None or c.owner != a.agent_id:
            continue
        if c.stage == "wrap_up":
            lg.close(c, ts, reason)
            continue
        lg.release(c, ts, reason)
        c.stage = "offered" if c.offer_agent is not None else "queued"
        lg.touch(c)
    a.holding = []


DECISIONS: dict[type, Handler] = {AgentNotResponding: _not_responding}
"""The decisions on agents the fold takes, by event type."""
INPUTS: dict[type, Handler] = {
    AgentRegistered: _registered,
    AgentUpdated: _updated,
    AgentStatusChanged: _status,
    AgentRemoved: _removed,
}
"""The inputs on agents the fold takes, by event type."""
