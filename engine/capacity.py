"""An agent's capacity: holding and releasing conversations, inactivity and reactivation.

Each conversation an agent holds (offered, assigned or in wrap-up) costs units of its
media class. An asynchronous conversation whose customer falls silent drops to its
inactive cost; when the customer writes again it needs its full cost back, and the
agent gets no new work until it fits.
"""

from __future__ import annotations

from .context import Context, ms
from .matching import CLASS_INDEX
from .policy import MediaClass
from .state import AgentState, ConversationState, TenantState, Timer

__all__ = [
    "customer_wrote",
    "go_inactive",
    "hold",
    "release",
    "release_owner",
    "schedule_inactivity",
]


def hold(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState, units: int
) -> None:
    """The agent takes ``units`` of the conversation's media class."""
    c = CLASS_INDEX[conv.media_class]
    agent.units[c] += units
    agent.counts[c] += 1
    agent.holding.append(conv.conversation_id)
    ctx.sync(tenant, agent)


def release(
    ctx: Context,
    tenant: TenantState,
    agent: AgentState,
    conv: ConversationState,
    cls: MediaClass,
    units: int,
) -> None:
    """The agent lets go of the conversation's ``units`` of ``cls``; the room may serve others."""
    c = CLASS_INDEX[cls]
    agent.units[c] -= units
    agent.counts[c] -= 1
    agent.holding.remove(conv.conversation_id)
    if conv.conversation_id in agent.pending_reactivation:
        agent.pending_reactivation.remove(conv.conversation_id)
    if not agent.holding:
        agent.idle_since = ctx.now
    ctx.sync(tenant, agent)
    _settle_reactivations(ctx, tenant, agent)
    ctx.dirty_agent(tenant, agent)


def release_owner(ctx: Context, tenant: TenantState, conv: ConversationState) -> AgentState:
    """The holding agent lets go of the conversation and its capacity."""
    assert conv.owner is not None and conv.owner_class is not None
    agent = tenant.agents[conv.owner]
    release(ctx, tenant, agent, conv, conv.owner_class, conv.owner_units)
    conv.owner = None
    conv.owner_units = 0
    conv.owner_class = None
    conv.inactive = False
    conv.activity_gen += 1
    conv.inactive_armed = 0
    return agent


def _settle_reactivations(ctx: Context, tenant: TenantState, agent: AgentState) -> None:
    """Give reawakened asynchronous conversations their full cost, oldest first."""
    matcher = ctx.matchers[tenant.tenant]
    while agent.pending_reactivation:
        conv = tenant.conversations[agent.pending_reactivation[0]]
        cls = conv.media_class
        delta = ctx.limit_cost(agent, cls) - conv.owner_units
        if not matcher.fits(agent.slot, cls, delta, adding=False):
            return
        agent.pending_reactivation.pop(0)
        agent.units[CLASS_INDEX[cls]] += delta
        conv.owner_units += delta
        conv.inactive = False
        ctx.sync(tenant, agent)
        schedule_inactivity(ctx, tenant, agent, conv)


def customer_wrote(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """The customer is active again: push inactivity back, or reactivate the conversation."""
    if conv.stage != "assigned" or conv.owner is None:
        return
    agent = tenant.agents[conv.owner]
    if not conv.inactive:
        schedule_inactivity(ctx, tenant, agent, conv)
        return
    if conv.conversation_id in agent.pending_reactivation:
        return
    agent.pending_reactivation.append(conv.conversation_id)
    _settle_reactivations(ctx, tenant, agent)
    ctx.sync(tenant, agent)


def schedule_inactivity(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState
) -> None:
    """Arm the timer after which the customer's silence makes the conversation inactive."""
    limit = ctx.policy.profiles[agent.profile].classes.get(conv.media_class)
    if limit is None or limit.inactive_after_s is None:
        return
    due = max(conv.last_in_ts, conv.assigned_ts) + ms(limit.inactive_after_s)
    conv.inactive_due = due
    if conv.inactive_armed and conv.inactive_armed <= due:
        return  # the armed timer fires first and re-arms for the later deadline
    conv.activity_gen += 1
    _arm_inactivity(ctx, tenant, conv, due)


def _arm_inactivity(ctx: Context, tenant: TenantState, conv: ConversationState, due: int) -> None:
    conv.inactive_armed = due
    ctx.schedule("inactive", tenant.tenant, conv.conversation_id, due, conv.activity_gen)


def go_inactive(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    """The inactivity timer: the conversation drops to its inactive cost (if still silent)."""
    if (
        conv.stage != "assigned"
        or conv.owner is None
        or conv.inactive
        or conv.activity_gen != timer.gen
    ):
        return
    conv.inactive_armed = 0
    if conv.inactive_due > ctx.now:  # the customer wrote since it was armed
        _arm_inactivity(ctx, tenant, conv, conv.inactive_due)
        return
    agent = tenant.agents[conv.owner]
    limit = ctx.policy.profiles[agent.profile].classes[conv.media_class]
    delta = conv.owner_units - limit.inactive_cost
    agent.units[CLASS_INDEX[conv.media_class]] -= delta
    conv.owner_units = limit.inactive_cost
    conv.inactive = True
    ctx.sync(tenant, agent)
    _settle_reactivations(ctx, tenant, agent)
    ctx.dirty_agent(tenant, agent)
