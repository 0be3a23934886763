"""Matching waiting conversations with agents who have room: offers and assignments.

After every event and every timer, :func:`route` looks at what changed (agents who
may have room, conversations whose eligibility changed) until nothing more can be
matched. A match is an offer the agent accepts or declines, or, for bots and
``offer_mode = "auto"`` queues, an assignment straight away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from .capacity import hold, release_owner, schedule_inactivity, set_owner
from .context import Context, ms
from .events import ConversationAssigned, ConversationOffered
from .legs import Hold, full_hold, live_legs
from .matching import urgency
from .queueing import leave_queue
from .state import AgentState, ConversationState, TenantState

__all__ = ["assign", "route"]


class _Pass:
    """What one routing pass gave each agent: after ``max_per_pass`` new conversations an
    agent gets more only when no other eligible agent has room (``full``: their slots)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.given: dict[tuple[str, str], int] = {}
        self.full: dict[str, list[int]] = {}

    def at_limit(self, tenant: str, agent: AgentState) -> bool:
        return self.given.get((tenant, agent.agent_id), 0) >= self.limit

    def gave(self, tenant: str, agent: AgentState) -> None:
        key = (tenant, agent.agent_id)
        self.given[key] = n = self.given.get(key, 0) + 1
        if n == self.limit:
            self.full.setdefault(tenant, []).append(agent.slot)


def route(ctx: Context) -> None:
    """Offer work until no dirty agent has a match and no dirty conversation an agent.

    A freed agent takes the most urgent conversation it can (``most_urgent``), again and
    again while it has room, but past ``max_per_pass`` in one pass each further one goes
    to another eligible agent with room if there is one: work is spread, not piled.
    """
    if not (ctx.dirty_agents or ctx.dirty_convs):
        return
    state = ctx.state
    spread = _Pass(ctx.policy.max_per_pass)
    while ctx.dirty_agents or ctx.dirty_convs:
        agents, ctx.dirty_agents = ctx.dirty_agents, {}
        for tname, aid in _ordered(agents, partial(_agent_order, ctx)):
            tenant = state.tenants[tname]
            agent = tenant.agents.get(aid)
            matcher = ctx.matchers[tname]
            while agent is not None and agent.routable:
                cid = matcher.most_urgent(agent.slot, ctx.now)
                if cid is None:
                    break
                conv = tenant.conversations[cid]
                if spread.at_limit(tname, agent) and _route_conversation(
                    ctx, tenant, conv, spread, others_only=True
                ):
                    continue
                score = matcher.score(
                    agent.slot, conv, _preferred_slot(tenant, conv), ctx.now,
                    state.offer_counter,
                )  # fmt: skip
                _offer(ctx, tenant, conv, agent, score, "agent_free")
                spread.gave(tname, agent)
        convs, ctx.dirty_convs = ctx.dirty_convs, {}
        for tname, cid in _ordered(convs, partial(_conv_order, ctx)):
            tenant = state.tenants[tname]
            waiting = tenant.conversations.get(cid)
            if waiting is not None and waiting.in_queue:
                _route_conversation(ctx, tenant, waiting, spread)


def _ordered(
    keys: dict[tuple[str, str], None], order: Callable[[tuple[str, str]], Any]
) -> Iterable[tuple[str, str]]:
    """``keys`` sorted by ``order`` (one key needs no sort key)."""
    return sorted(keys, key=order) if len(keys) > 1 else keys


def _agent_order(ctx: Context, key: tuple[str, str]) -> tuple[str, int]:
    agent = ctx.state.tenants[key[0]].agents.get(key[1])
    return (key[0], agent.seq if agent is not None else -1)


def _conv_order(ctx: Context, key: tuple[str, str]) -> tuple[str, tuple[int, int, int]]:
    conv = ctx.state.tenants[key[0]].conversations.get(key[1])
    if conv is None:
        return (key[0], (0, 0, -1))
    return (key[0], urgency(conv, ctx.policy.queues[conv.queue], ctx.policy.urgency))


def _preferred_slot(tenant: TenantState, conv: ConversationState) -> int:
    agent = tenant.agents.get(conv.preferred) if conv.preferred else None
    return agent.slot if agent is not None else -1


def _active_pin(ctx: Context, tenant: TenantState, conv: ConversationState) -> AgentState | None:
    """The agent a conversation waits for, while that agent is there to take it."""
    if conv.pinned is None:
        return None
    if conv.pin_until is not None and ctx.now >= conv.pin_until:
        return None
    agent = tenant.agents.get(conv.pinned)
    if agent is None or agent.status != "available" or not agent.responsive:
        return None
    return agent


def _route_conversation(
    ctx: Context,
    tenant: TenantState,
    conv: ConversationState,
    spread: _Pass,
    *,
    others_only: bool = False,
) -> bool:
    """Offer the conversation to its best eligible agent, preferring agents this pass has
    not yet given ``max_per_pass`` (``others_only``: only those); True if offered."""
    matcher = ctx.matchers[tenant.tenant]
    pin = _active_pin(ctx, tenant, conv)
    excluded = ctx.excluded_slots(tenant, conv)
    full = spread.full.get(tenant.tenant, [])
    choices = (
        [excluded + full] if others_only else [excluded + full, excluded] if full else [excluded]
    )
    for slots in choices:
        slot, score = matcher.best_agent(
            conv, slots, _preferred_slot(tenant, conv), pin.slot if pin is not None else -1,
            ctx.now, ctx.state.offer_counter,
        )  # fmt: skip
        if slot >= 0:
            agent = tenant.agents[matcher.agent_at[slot]]
            why = "pinned" if pin is not None else "spread" if others_only else ctx.policy.preset
            _offer(ctx, tenant, conv, agent, score, why)
            spread.gave(tenant.tenant, agent)
            return True
    return False


def _offer(
    ctx: Context,
    tenant: TenantState,
    conv: ConversationState,
    agent: AgentState,
    score: float,
    why: str,
) -> None:
    state = ctx.state
    now = ctx.now
    legs = live_legs(conv)
    h = full_hold(ctx.policy, agent, legs)
    state.offer_counter += 1
    agent.last_offer = state.offer_counter
    leave_queue(ctx, tenant, conv)
    hold(ctx, tenant, agent, conv, h)
    queue = ctx.policy.queues[conv.queue]
    if agent.kind == "bot" or queue.offer_mode == "auto":
        assign(ctx, tenant, conv, agent, h, score, why)
        return
    if conv.owner is None:
        conv.stage = "offered"
    conv.offer_agent = agent.agent_id
    conv.offer_class, conv.offer_units, conv.offer_also = h.cls, h.units, h.also
    conv.offer_seq = state.offer_counter
    deadline = now + ms(queue.offer_timeout_s)
    ctx.schedule("offer", tenant.tenant, conv.conversation_id, deadline, conv.offer_seq)
    ctx.emit(
        ConversationOffered(
            tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
            agent_id=agent.agent_id, score=score, why=why, deadline=deadline,
            legs=[leg.leg_id for leg in legs],
        )
    )  # fmt: skip


def assign(
    ctx: Context,
    tenant: TenantState,
    conv: ConversationState,
    agent: AgentState,
    h: Hold,
    score: float | None,
    why: str | None,
) -> None:
    """The agent now owns the conversation and all its live legs, holding ``h`` for it
    (an accepted offer, a bot, an auto queue)."""
    now = ctx.now
    if conv.owner is not None and conv.owner != agent.agent_id:
        release_owner(ctx, tenant, conv)
    set_owner(conv, agent.agent_id, h)
    conv.offer_agent = None
    conv.offer_class, conv.offer_units, conv.offer_also = None, 0, ()
    conv.stage = "assigned"
    conv.pinned = None
    conv.pin_until = None
    conv.inactive = False
    conv.assigned_ts = now
    if conv.kinds == "bot":
        conv.kinds = "any"
    if agent.kind == "human":
        conv.answered_by_human = True
    legs = live_legs(conv)
    for leg in legs:
        leg.joined = True
    ctx.emit(
        ConversationAssigned(
            tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
            agent_id=agent.agent_id, score=score, why=why,
            wait_ms=now - conv.first_contact_ts, legs=[leg.leg_id for leg in legs],
        )
    )  # fmt: skip
    schedule_inactivity(ctx, tenant, agent, conv)
