"""Fixtures of the live-state tests: a hand-built voice morning whose live figures are
known, and the engine's own view of "now" to compare the projection's with.

The morning (seconds after T0 = 2026-01-01T08:00:00Z, queue ``q``, voice target 20 s,
auto-assigned, no wrap-up; ann alone answers). ``as_of`` is 10:00:00 (a final Tick).

========  =========  ==============================================  ==================
contact   arrives    what happens                                    SLA
========  =========  ==============================================  ==================
c1        08:00:00   answered at once, ends 08:01                   met
c2        08:00:10   waits behind c1, abandons after 30 s            not met (breach)
c3        09:10:00   answered at once, ends 09:11                   met
c4        09:20:00   answered at once, ends 09:25                   met
c5        09:20:30   abandons after 3 s                              short abandon
c6        09:50:00   answered at once, still on the call at 10:00   met
c10       09:52:00   waits behind c6, abandons after 60 s            not met (breach)
c7        09:55:00   still waiting at 10:00 (300 s)                  not met (breach)
c8        09:59:50   still waiting at 10:00 (10 s)                   not measured yet
========  =========  ==============================================  ==================
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from omniroute.engine import Engine, parse_policy
from omniroute.engine import events as ev
from omniroute.engine.legs import live_legs
from tests.support.projection import do

MORNING_POLICY = parse_policy(
    """
[queues.q]
offer_mode = "auto"
wrap_up_s = 0
sla_s = { voice = 20 }
"""
)


def _call(cid: str) -> tuple[Any, ...]:
    return do(
        ev.ConversationArrived, conversation_id=cid, channel="voice",
        contact=ev.Contact("voice", f"+{cid}"), queue="q",
    )  # fmt: skip


def _clock(hh: int, mm: int, ss: int = 0) -> float:
    """Seconds after T0 (08:00) of a time of that morning."""
    return (hh - 8) * 3600 + mm * 60 + ss


MORNING: list[tuple[float, tuple[Any, ...]]] = [
    (0, do(ev.AgentRegistered, agent_id="ann", name="Ann", skills={})),
    (0, do(ev.AgentStatusChanged, agent_id="ann", status="available")),
    (_clock(8, 0), _call("c1")),
    (_clock(8, 0, 10), _call("c2")),
    (_clock(8, 0, 40), do(ev.CustomerAbandoned, conversation_id="c2")),
    (_clock(8, 1), do(ev.ConversationEnded, conversation_id="c1")),
    (_clock(9, 10), _call("c3")),
    (_clock(9, 11), do(ev.ConversationEnded, conversation_id="c3")),
    (_clock(9, 20), _call("c4")),
    (_clock(9, 20, 30), _call("c5")),
    (_clock(9, 20, 33), do(ev.CustomerAbandoned, conversation_id="c5")),
    (_clock(9, 25), do(ev.ConversationEnded, conversation_id="c4")),
    (_clock(9, 50), _call("c6")),
    (_clock(9, 52), _call("c10")),
    (_clock(9, 53), do(ev.CustomerAbandoned, conversation_id="c10")),
    (_clock(9, 55), _call("c7")),
    (_clock(9, 59, 50), _call("c8")),
    (_clock(10, 0), do(ev.Tick)),
]


LAPSE_POLICY = parse_policy(
    """
[queues.o]
offer_timeout_s = 10
sla_s = { voice = 20 }
"""
)
LAPSE: list[tuple[float, tuple[Any, ...]]] = [
    (0, do(ev.AgentRegistered, agent_id="bob", skills={})),
    (0, do(ev.AgentRegistered, agent_id="cy", skills={})),
    (0, do(ev.AgentStatusChanged, agent_id="bob", status="available")),
    (5, do(ev.ConversationArrived, conversation_id="d1", channel="voice",
           contact=ev.Contact("voice", "+d1"), queue="o")),
    (18, do(ev.AgentStatusChanged, agent_id="cy", status="available")),
    (20, do(ev.Tick)),
]  # fmt: skip
"""An offer that lapses: d1 is offered to bob at 5 s, who lets it lapse at 15 s (not
responding from then on); cy comes at 18 s and is offered it."""


def engine_queues(engine: Engine) -> Counter[tuple[str, str, str, str]]:
    """The engine's live legs per (tenant, queue, channel, figure): ``waiting`` (live, not
    taken on by the conversation's holder, not a scheduled callback), ``offered`` (of
    those, an offer is out), ``handling`` (taken on by a human holder)."""
    out: Counter[tuple[str, str, str, str]] = Counter()
    for name, tenant in engine.state.tenants.items():
        for conv in tenant.conversations.values():
            if conv.stage == "scheduled":
                continue
            owner = tenant.agents.get(conv.owner) if conv.owner else None
            for leg in live_legs(conv):
                key = (name, conv.queue, leg.channel)
                if owner is not None and leg.joined:
                    if owner.kind == "human":
                        out[(*key, "handling")] += 1
                    continue
                out[(*key, "waiting")] += 1
                if conv.offer_agent is not None:
                    out[(*key, "offered")] += 1
    return out


def engine_agents(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    """Each agent as the engine holds it: status (``not_responding`` when available but
    unresponsive), the conversations held, their live legs (an offer's all, its holder's
    those joined), the capacity units charged."""
    out = {}
    for name, tenant in engine.state.tenants.items():
        for agent in tenant.agents.values():
            legs = 0
            for cid in agent.holding:
                conv = tenant.conversations[cid]
                if conv.offer_agent == agent.agent_id:
                    legs += len(live_legs(conv))
                elif conv.owner == agent.agent_id and conv.stage == "assigned":
                    legs += sum(1 for leg in live_legs(conv) if leg.joined)
            unresponsive = agent.status == "available" and not agent.responsive
            out[(name, agent.agent_id)] = {
                "status": "not_responding" if unresponsive else agent.status,
                "not_responding": unresponsive,
                "conversations": tuple(sorted(agent.holding)),
                "legs": legs,
                "units_used": sum(agent.units),
            }
    return out
