"""An agent's capacity: holding and releasing conversations, growing and shrinking a hold.

Each conversation an agent holds (offered, assigned or in wrap-up) costs a :class:`Hold`:
the units of its most demanding live leg's class, and one item of every class among its
legs (``legs.py``). A hold shrinks at once (a leg ended, the customer fell silent); it
grows only when the agent has room: a new leg or a reawakened asynchronous conversation
waits in the agent's ``pending`` list, oldest first, and the agent gets no new work
until it fits. A new leg that waits longer than the queue's ``sticky_wait_s`` is routed
to anyone (``timers.py``). So an agent is never over their budget or a class maximum.
"""

from __future__ import annotations

from .context import Context, ms
from .events import LegJoined, OfferExpired, OfferExpiry
from .legs import Hold, full_hold, live_legs
from .matching import CLASS_INDEX
from .state import AgentState, ConversationState, Leg, TenantState, Timer

__all__ = [
    "customer_wrote",
    "go_inactive",
    "hold",
    "offer_hold",
    "owner_hold",
    "rehold",
    "release",
    "release_owner",
    "schedule_inactivity",
    "set_owner",
    "stop_waiting",
    "withdraw_offer",
]


def owner_hold(conv: ConversationState) -> Hold | None:
    """What the conversation's owner holds for it, or None."""
    if conv.owner_class is None:
        return None
    return Hold(conv.owner_class, conv.owner_units, conv.owner_also)


def offer_hold(conv: ConversationState) -> Hold | None:
    """What the offered agent has reserved for it, or None."""
    if conv.offer_class is None:
        return None
    return Hold(conv.offer_class, conv.offer_units, conv.offer_also)


def _charge(agent: AgentState, h: Hold, sign: int) -> None:
    c = CLASS_INDEX[h.cls]
    agent.units[c] += sign * h.units
    agent.counts[c] += sign
    for cls in h.also:
        agent.counts[CLASS_INDEX[cls]] += sign


def hold(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState, h: Hold
) -> None:
    """The agent takes ``h`` for the conversation (an offer or an assignment)."""
    if not agent.holding:
        agent.idle_since = ctx.now  # busy from now: ``idle_since`` marks the last change
    _charge(agent, h, 1)
    agent.holding.append(conv.conversation_id)
    ctx.sync(tenant, agent)


def release(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState, h: Hold
) -> None:
    """The agent lets go of the conversation's ``h``; the room may serve others."""
    _charge(agent, h, -1)
    agent.holding.remove(conv.conversation_id)
    if conv.conversation_id in agent.pending:
        agent.pending.remove(conv.conversation_id)
    if not agent.holding:
        agent.idle_since = ctx.now
    ctx.sync(tenant, agent)
    _settle(ctx, tenant, agent)
    ctx.dirty_agent(tenant, agent)


def set_owner(conv: ConversationState, agent_id: str, h: Hold) -> None:
    """The agent now owns the conversation with hold ``h`` (already charged to them)."""
    conv.owner = agent_id
    conv.owner_class, conv.owner_units, conv.owner_also = h.cls, h.units, h.also


def release_owner(ctx: Context, tenant: TenantState, conv: ConversationState) -> AgentState:
    """The holding agent lets go of the conversation, its legs and its capacity."""
    h = owner_hold(conv)
    assert conv.owner is not None and h is not None
    agent = tenant.agents[conv.owner]
    conv.owner = None
    conv.owner_class, conv.owner_units, conv.owner_also = None, 0, ()
    conv.inactive = False
    conv.activity_gen += 1
    conv.inactive_armed = 0
    conv.leg_wait = False
    for leg in conv.legs:
        leg.joined = False
    release(ctx, tenant, agent, conv, h)
    return agent


def withdraw_offer(
    ctx: Context, tenant: TenantState, conv: ConversationState, reason: OfferExpiry | None
) -> AgentState:
    """Cancel the pending offer and free its reserved capacity; emits ``OfferExpired``
    unless ``reason`` is None (the agent declined: their event says it)."""
    h = offer_hold(conv)
    assert conv.offer_agent is not None and h is not None
    agent = tenant.agents[conv.offer_agent]
    if reason is not None:
        ctx.emit(
            OfferExpired(
                tenant=tenant.tenant, ts=ctx.now,
                conversation_id=conv.conversation_id, agent_id=agent.agent_id, reason=reason,
            )
        )  # fmt: skip
    conv.offer_agent = None
    conv.offer_class, conv.offer_units, conv.offer_also = None, 0, ()
    if conv.owner is None:
        conv.stage = "queued"
    release(ctx, tenant, agent, conv, h)
    return agent


def _within(new: Hold, old: Hold) -> bool:
    """True when ``new`` takes no more than ``old`` of anything (a shrink)."""
    return new.units <= old.units and {new.cls, *new.also} <= {old.cls, *old.also}


def _resize(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState, new: Hold
) -> None:
    old = owner_hold(conv)
    assert old is not None and conv.owner is not None
    _charge(agent, old, -1)
    _charge(agent, new, 1)
    set_owner(conv, conv.owner, new)
    if new.cls != old.cls:  # an inactivity timer armed for the old lead class is stale
        conv.activity_gen += 1
        conv.inactive_armed = 0
    ctx.sync(tenant, agent)


def _fits_instead(
    ctx: Context, tenant: TenantState, agent: AgentState, old: Hold, new: Hold
) -> bool:
    """Would the agent fit ``new`` in place of ``old``, by the rule routing uses?"""
    classes = ctx.policy.profiles[agent.profile].classes
    _charge(agent, old, -1)
    ctx.sync(tenant, agent)
    fits = ctx.matchers[tenant.tenant].fits(agent.slot, new.cls, new.units, adding=True) and all(
        (limit := classes.get(cls)) is not None and agent.counts[CLASS_INDEX[cls]] < limit.max
        for cls in new.also
    )
    _charge(agent, old, 1)
    ctx.sync(tenant, agent)
    return fits


def _holdable(ctx: Context, agent: AgentState, conv: ConversationState) -> list[Leg]:
    """The live legs this agent's profile can hold (a leg of another class waits for anyone)."""
    classes = ctx.policy.profiles[agent.profile].classes
    return [leg for leg in live_legs(conv) if leg.media_class in classes]


def _cost(
    ctx: Context, agent: AgentState, conv: ConversationState, legs: list[Leg], *, active: bool
) -> Hold:
    """What ``legs`` cost the agent (the inactive cost while the customer stays silent)."""
    h = full_hold(ctx.policy, agent, legs)
    if not active and conv.inactive and h.cls == conv.owner_class:
        return h._replace(units=conv.owner_units)
    return h


def _join_legs(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState
) -> None:
    """Every live leg the agent can hold is now theirs: say so for those that were not."""
    for leg in _holdable(ctx, agent, conv):
        if not leg.joined:
            leg.joined = True
            ctx.emit(
                LegJoined(
                    tenant=tenant.tenant, ts=ctx.now, conversation_id=conv.conversation_id,
                    leg=leg.leg_id, agent_id=agent.agent_id, channel=leg.channel,
                )
            )  # fmt: skip


def rehold(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState, *,
    active: bool,
) -> None:  # fmt: skip
    """Make the owner's hold what the live legs cost now: shrink at once, grow when it fits.

    ``active``: the customer just wrote, so an inactive conversation needs its full cost.
    While a hold must grow, it covers at least the legs the owner serves (their classes,
    and their units as far as the old hold's go), and the agent gets no new work.
    """
    old = owner_hold(conv)
    assert old is not None
    holdable = _holdable(ctx, agent, conv)
    new = _cost(ctx, agent, conv, holdable, active=active) if holdable else old
    if _within(new, old):
        if new != old:
            _resize(ctx, tenant, agent, conv, new)
        if new.cls != old.cls or active:
            conv.inactive = False
            schedule_inactivity(ctx, tenant, agent, conv)
        if conv.conversation_id in agent.pending:
            agent.pending.remove(conv.conversation_id)
            ctx.sync(tenant, agent)
        _joined(ctx, tenant, agent, conv)
    else:
        served = [leg for leg in holdable if leg.joined]
        part = _cost(ctx, agent, conv, served, active=active) if served else old
        part = part._replace(units=min(part.units, old.units))
        if part != old:  # the legs that ended no longer count
            _resize(ctx, tenant, agent, conv, part)
            if part.cls != old.cls:
                conv.inactive = False
                schedule_inactivity(ctx, tenant, agent, conv)
        if conv.conversation_id not in agent.pending:
            agent.pending.append(conv.conversation_id)
            ctx.sync(tenant, agent)
    _settle(ctx, tenant, agent)  # what the pending holds wait for may have changed
    ctx.dirty_agent(tenant, agent)
    waiting = [leg for leg in live_legs(conv) if not leg.joined]
    if waiting and conv.owner == agent.agent_id:
        # a leg waits for this agent's room, or (never in their profile) for anyone
        able = len(holdable) == len(live_legs(conv))
        wait_s = ctx.policy.queues[conv.queue].sticky_wait_s if able else 0.0
        conv.leg_gen += 1
        ctx.schedule("leg", tenant.tenant, conv.conversation_id, ctx.now + ms(wait_s), conv.leg_gen)


def _joined(ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState) -> None:
    """The owner's hold covers the live legs they can hold: announce new ones, and stop
    waiting for anyone else once every live leg is theirs."""
    _join_legs(ctx, tenant, agent, conv)
    if conv.leg_wait and all(leg.joined for leg in live_legs(conv)):
        conv.leg_wait = False
        if conv.offer_agent is not None:
            withdraw_offer(ctx, tenant, conv, "leg_joined")
        conv.in_queue = False
        ctx.matchers[tenant.tenant].dequeue(conv.conversation_id)


def _settle(ctx: Context, tenant: TenantState, agent: AgentState) -> None:
    """Grow pending holds that fit now, oldest first; the first that does not fit waits."""
    while agent.pending:
        conv = tenant.conversations[agent.pending[0]]
        old = owner_hold(conv)
        assert old is not None
        holdable = _holdable(ctx, agent, conv)
        new = _cost(ctx, agent, conv, holdable, active=True) if holdable else old
        if not _within(new, old) and not _fits_instead(ctx, tenant, agent, old, new):
            return
        agent.pending.pop(0)
        _resize(ctx, tenant, agent, conv, new)
        conv.inactive = False
        schedule_inactivity(ctx, tenant, agent, conv)
        _joined(ctx, tenant, agent, conv)


def stop_waiting(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState
) -> None:
    """The conversation's hold need not grow any more (it ended): the agent's next pending
    hold gets its chance, and the agent may get new work."""
    if conv.conversation_id in agent.pending:
        agent.pending.remove(conv.conversation_id)
        ctx.sync(tenant, agent)
        _settle(ctx, tenant, agent)
        ctx.dirty_agent(tenant, agent)


def customer_wrote(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """The customer is active again: push inactivity back, or reactivate the conversation."""
    if conv.stage != "assigned" or conv.owner is None:
        return
    agent = tenant.agents[conv.owner]
    if not conv.inactive:
        schedule_inactivity(ctx, tenant, agent, conv)
        return
    rehold(ctx, tenant, agent, conv, active=True)


def schedule_inactivity(
    ctx: Context, tenant: TenantState, agent: AgentState, conv: ConversationState
) -> None:
    """Arm the timer after which the customer's silence makes the conversation inactive."""
    if conv.owner_class is None:
        return
    limit = ctx.policy.profiles[agent.profile].classes.get(conv.owner_class)
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
        or conv.owner_class is None
        or conv.inactive
        or conv.activity_gen != timer.gen
    ):
        return
    conv.inactive_armed = 0
    if conv.inactive_due > ctx.now:  # the customer wrote since it was armed
        _arm_inactivity(ctx, tenant, conv, conv.inactive_due)
        return
    agent = tenant.agents[conv.owner]
    limit = ctx.policy.profiles[agent.profile].classes[conv.owner_class]
    if limit.inactive_after_s is None or conv.conversation_id in agent.pending:
        return  # its lead never goes quiet (a call), or a leg waits for room
    agent.units[CLASS_INDEX[conv.owner_class]] -= conv.owner_units - limit.inactive_cost
    conv.owner_units = limit.inactive_cost
    conv.inactive = True
    ctx.sync(tenant, agent)
    _settle(ctx, tenant, agent)
    ctx.dirty_agent(tenant, agent)
