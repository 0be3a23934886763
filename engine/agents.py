"""The agent events: registration, updates, status changes and removal.

An agent who stops being available gives back their pending offers; one who goes
offline or is removed gives back everything they hold, so nothing is lost.
"""

from __future__ import annotations

from .capacity import release_owner
from .context import Context
from .events import (
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
)
from .matching import CLASS_INDEX
from .queueing import agent_unavailable, close, enqueue, retract_offer, void_pins
from .state import AgentState, TenantState, shared_skills
from .validation import Rejected, agent_of, known_tenant

__all__ = ["agent_registered", "agent_removed", "agent_status_changed", "agent_updated"]

_N_CLASSES = len(CLASS_INDEX)


def agent_registered(ctx: Context, event: AgentRegistered) -> None:
    policy = ctx.policy
    default = policy.bot_profile if event.kind == "bot" else policy.human_profile
    profile = event.capacity_profile or default
    if profile not in policy.profiles:
        raise Rejected(f"unknown capacity profile {profile!r}")
    existing = ctx.state.tenants.get(event.tenant)
    if existing is not None and event.agent_id in existing.agents:
        raise Rejected(f"agent {event.agent_id!r} is already registered")
    tenant = ctx.tenant(event.tenant)
    slot = tenant.next_slot
    tenant.next_slot += 1
    agent = AgentState(
        agent_id=event.agent_id, seq=ctx.next_seq(), slot=slot, kind=event.kind,
        skills=shared_skills(event.skills), profile=profile, languages=list(event.languages),
        units=[0] * _N_CLASSES, counts=[0] * _N_CLASSES, idle_since=ctx.now,
    )  # fmt: skip
    tenant.agents[agent.agent_id] = agent
    matcher = ctx.matchers[tenant.tenant]
    matcher.agent_at[slot] = agent.agent_id
    ctx.sync(tenant, agent)
    for cid in matcher.naming(agent.agent_id):  # pinned to or declined before its removal
        ctx.index(tenant, tenant.conversations[cid])


def agent_updated(ctx: Context, event: AgentUpdated) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    agent = agent_of(tenant, event.agent_id)
    if event.capacity_profile is not None and event.capacity_profile != agent.profile:
        if event.capacity_profile not in ctx.policy.profiles:
            raise Rejected(f"unknown capacity profile {event.capacity_profile!r}")
        if agent.holding:
            raise Rejected(
                "agent holds conversations; change the capacity profile when they are free"
            )
        agent.profile = event.capacity_profile
    if event.skills is not None:
        agent.skills = shared_skills(event.skills)
    if event.languages is not None:
        agent.languages = list(event.languages)
    ctx.sync(tenant, agent)
    ctx.dirty_agent(tenant, agent)


def agent_status_changed(ctx: Context, event: AgentStatusChanged) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    agent = agent_of(tenant, event.agent_id)
    if event.status == "available":
        if agent.status != "available" or not agent.responsive:
            agent.idle_since = ctx.now
        agent.status = "available"
        agent.responsive = True
        ctx.sync(tenant, agent)
        ctx.dirty_agent(tenant, agent)
        return
    agent.status = event.status
    agent_unavailable(ctx, tenant, agent)
    if event.status == "offline":
        _hand_back(ctx, tenant, agent, "agent_offline")


def agent_removed(ctx: Context, event: AgentRemoved) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    agent = agent_of(tenant, event.agent_id)
    agent.status = "offline"
    ctx.sync(tenant, agent)
    void_pins(ctx, tenant, agent)
    _hand_back(ctx, tenant, agent, "agent_removed")
    matcher = ctx.matchers[tenant.tenant]
    matcher.table.clear(agent.slot)
    del matcher.agent_at[agent.slot]
    del tenant.agents[agent.agent_id]


def _hand_back(ctx: Context, tenant: TenantState, agent: AgentState, reason: str) -> None:
    """Return everything an agent holds: nothing is lost when an agent leaves."""
    for cid in list(agent.holding):
        conv = tenant.conversations[cid]
        if conv.offer_agent == agent.agent_id:
            retract_offer(ctx, tenant, conv, "agent_unavailable", reason)
            continue
        assert conv.owner == agent.agent_id
        release_owner(ctx, tenant, conv)
        if conv.stage == "wrap_up":
            close(ctx, tenant, conv)
        elif conv.offer_agent is not None:
            conv.stage = "offered"  # the warm transfer's offer goes on without them
        elif conv.in_queue:
            enqueue(ctx, tenant, conv, reason, if_waiting="refresh")
        else:
            enqueue(ctx, tenant, conv, reason, rings="restart")
