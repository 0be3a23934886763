"""Time: firing due timers in deadline order, and what each kind of timer does.

Timers are set with ``Context.schedule`` and fire before the event whose ``ts`` passes
their deadline, each at its deadline and followed by matching. A timer carries a
generation (``gen``); one made stale since it was set (the offer was answered, the
conversation moved on) changes nothing. When the clock moves, the customers due to be
forgotten by then are forgotten too (``arrivals``: bounded state, in event time).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from .arrivals import forget_due
from .capacity import go_inactive, withdraw_offer
from .context import Context, ms
from .events import AgentNotResponding, ConversationEscalated, WrapUpExpired
from .legs import live_legs
from .queueing import (
    agent_unavailable,
    arm_ring,
    check_sla,
    enqueue,
    exclude,
    finish,
)
from .routing import route
from .state import ConversationState, TenantState, Timer, TimerKind

__all__ = ["advance"]


def advance(ctx: Context, tenant: TenantState, now: int) -> None:
    """Move the tenant's clock to ``now`` (never back), firing its timers due by then in
    deadline order, each at its deadline; ``ctx.now`` follows. Other tenants' time stands.
    Then the customers due to be forgotten by ``now`` are (``arrivals.forget_due``)."""
    timers = tenant.timers
    conversations = tenant.conversations
    ctx.now = tenant.clock
    while timers and timers[0].deadline <= now:
        timer = heapq.heappop(timers)
        if timer.deadline > tenant.clock:
            ctx.now = tenant.clock = timer.deadline
        conv = conversations.get(timer.key)
        if conv is not None:
            _ON_TIMER[timer.kind](ctx, tenant, conv, timer)
        route(ctx)
    ctx.now = tenant.clock = max(tenant.clock, now)
    if tenant.forget and tenant.forget[0][0] <= now:
        forget_due(ctx, tenant)


def _offer_timeout(
    ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer
) -> None:
    if conv.offer_agent is None or conv.offer_seq != timer.gen:
        return
    agent = withdraw_offer(ctx, tenant, conv, "timeout")
    exclude(conv, agent.agent_id)
    agent.responsive = False
    ctx.emit(AgentNotResponding(tenant=tenant.tenant, ts=ctx.now, agent_id=agent.agent_id))
    agent_unavailable(ctx, tenant, agent)
    enqueue(ctx, tenant, conv, "offer_timeout")


def _ring(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    waiting = conv.in_queue or conv.offer_agent is not None
    if conv.route_gen != timer.gen or not waiting:
        return
    rings = ctx.policy.queues[conv.queue].rings
    elapsed = ctx.now - conv.enqueued_ts
    ring = sum(1 for r in rings if ms(r.after_s) <= elapsed)
    if ring <= conv.ring:
        return
    conv.ring = ring
    arm_ring(ctx, tenant, conv)
    ctx.emit(
        ConversationEscalated(
            tenant=tenant.tenant, ts=ctx.now,
            conversation_id=conv.conversation_id, ring=ring,
        )
    )  # fmt: skip
    if conv.in_queue:
        ctx.dirty_conv(tenant, conv)


def _sla(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    check_sla(ctx, tenant, conv)


def _pin_over(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    if conv.pin_until == timer.gen:
        conv.pinned = None
        conv.pin_until = None
        if conv.in_queue:
            ctx.dirty_conv(tenant, conv)


def _bot_window(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    if conv.bot_until == timer.gen and conv.kinds == "bot":
        conv.kinds = "any"
        if conv.in_queue:
            ctx.dirty_conv(tenant, conv)


def _wrap_up(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    if conv.stage != "wrap_up" or conv.owner is None:
        return
    ctx.emit(
        WrapUpExpired(
            tenant=tenant.tenant, ts=ctx.now,
            conversation_id=conv.conversation_id, agent_id=conv.owner,
        )
    )  # fmt: skip
    finish(ctx, tenant, conv)


def _callback_due(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    if conv.stage == "scheduled" and conv.route_gen == timer.gen:
        enqueue(ctx, tenant, conv, "callback", rings="restart")


def _leg_waited(ctx: Context, tenant: TenantState, conv: ConversationState, timer: Timer) -> None:
    """A new leg waited ``sticky_wait_s`` for its agent's room: anyone may take it now.

    The agent keeps serving the legs they hold until another agent takes the whole
    conversation; a transfer under way takes the leg along anyway.
    """
    if conv.leg_gen != timer.gen or conv.owner is None or conv.stage != "assigned":
        return
    waiting = [leg for leg in live_legs(conv) if not leg.joined]
    if not waiting or conv.in_queue or conv.offer_agent is not None:
        return
    conv.leg_wait = True
    enqueue(ctx, tenant, conv, "leg_waiting", rings="restart", leg=waiting[0].leg_id)


_ON_TIMER: dict[TimerKind, Callable[[Context, TenantState, ConversationState, Timer], None]] = {
    "offer": _offer_timeout,
    "ring": _ring,
    "sla": _sla,
    "pin": _pin_over,
    "bot": _bot_window,
    "wrap_up": _wrap_up,
    "inactive": go_inactive,
    "callback": _callback_due,
    "leg": _leg_waited,
}
