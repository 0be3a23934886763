"""The events of an open conversation: messages, offer answers, transfers, handoffs, the end.

Each handler checks the conversation is where its event says (offered to that agent,
assigned to them, in wrap-up with them, waiting) before it changes anything.
"""

from __future__ import annotations

import sys

from .arrivals import customer_left
from .capacity import (
    customer_wrote,
    offer_hold,
    rehold,
    release_owner,
    stop_waiting,
    withdraw_offer,
)
from .context import Context, ms
from .events import (
    CallbackRequested,
    ConversationEnded,
    CustomerAbandoned,
    HandoffRequested,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    Skills,
    TransferRequested,
    WrapUpCompleted,
)
from .legs import leg_of, live_legs, refresh_lead
from .queueing import (
    close,
    end_for_customer,
    enqueue,
    finish,
    handing_over,
    leave_queue,
    pin,
    refit_offer,
    retract_offer,
)
from .routing import assign
from .state import ConversationState, TenantState, shared_skills
from .validation import (
    Rejected,
    agent_of,
    check_can_take,
    conversation_of,
    known_tenant,
    queue_of,
)

__all__ = [
    "callback_requested",
    "conversation_ended",
    "customer_abandoned",
    "handoff_requested",
    "message_received",
    "offer_accepted",
    "offer_declined",
    "transfer_requested",
    "wrap_up_completed",
]


def message_received(ctx: Context, event: MessageReceived) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = conversation_of(tenant, event.conversation_id)
    if event.leg is not None:
        leg = leg_of(conv, event.leg)
        if leg is None:
            raise Rejected(f"conversation {conv.conversation_id!r} has no leg {event.leg!r}")
        if leg.ended_ts is not None:
            raise Rejected(f"leg {event.leg!r} has already ended")
    if event.direction == "in":
        conv.last_in_ts = ctx.now
        customer_wrote(ctx, tenant, conv)
    elif conv.owner is not None and tenant.agents[conv.owner].kind == "human":
        conv.replied = True


def _offered_to(tenant: TenantState, conversation_id: str, agent_id: str) -> ConversationState:
    conv = conversation_of(tenant, conversation_id)
    if conv.offer_agent != agent_id:
        raise Rejected(f"conversation {conversation_id!r} is not offered to {agent_id!r}")
    return conv


def offer_accepted(ctx: Context, event: OfferAccepted) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = _offered_to(tenant, event.conversation_id, event.agent_id)
    agent = tenant.agents[event.agent_id]
    h = offer_hold(conv)
    assert h is not None
    assign(ctx, tenant, conv, agent, h, None, None)


def offer_declined(ctx: Context, event: OfferDeclined) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = _offered_to(tenant, event.conversation_id, event.agent_id)
    retract_offer(ctx, tenant, conv, None, "declined")


def _held_by(tenant: TenantState, conversation_id: str, agent_id: str) -> ConversationState:
    conv = conversation_of(tenant, conversation_id)
    if conv.stage != "assigned" or conv.owner != agent_id:
        raise Rejected(f"conversation {conversation_id!r} is not assigned to {agent_id!r}")
    if conv.in_queue or conv.offer_agent is not None:
        raise Rejected(f"conversation {conversation_id!r} is already being transferred")
    return conv


def transfer_requested(ctx: Context, event: TransferRequested) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = _held_by(tenant, event.conversation_id, event.agent_id)
    if event.to_agent is None and event.to_queue is None and event.skills is None:
        raise Rejected("a transfer needs to_agent, to_queue or skills")
    if event.to_agent is not None and (event.to_queue is not None or event.skills is not None):
        raise Rejected("a transfer to an agent takes no to_queue or skills")
    if event.to_agent is not None:
        target = agent_of(tenant, event.to_agent)
        if target.agent_id == event.agent_id:
            raise Rejected("an agent cannot transfer to themselves")
        if target.status != "available" or not target.responsive:
            raise Rejected(f"target agent {event.to_agent!r} is not available")
        check_can_take(ctx.policy, target, conv)
    if event.to_queue is not None:
        queue_of(ctx.policy, event.to_queue)
    agent = tenant.agents[event.agent_id]
    if agent.kind == "bot" and event.mode == "warm":
        raise Rejected("a bot hands over cold (HandoffRequested), it never shares one")
    conv.transfers += 1
    _redirect(conv, event.to_queue, event.skills)
    if event.skills is not None:
        conv.optional_skills = shared_skills({})
    conv.excluded = (agent.agent_id,)
    conv.preferred = None
    if event.mode == "cold":
        release_owner(ctx, tenant, conv)
    if event.to_agent is not None:
        conv.preferred = event.to_agent
        pin(ctx, tenant, conv, event.to_agent, ctx.policy.queues[conv.queue].transfer_wait_s)
    enqueue(ctx, tenant, conv, "transfer", rings="restart")


def _redirect(conv: ConversationState, queue: str | None, skills: Skills | None) -> None:
    """A transfer or handoff to another queue (its own skills only) or to these skills."""
    if queue is not None:
        conv.queue = sys.intern(queue)
        conv.skills = conv.optional_skills = shared_skills({})
    if skills is not None:
        conv.skills = shared_skills(skills)


def handoff_requested(ctx: Context, event: HandoffRequested) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = _held_by(tenant, event.conversation_id, event.agent_id)
    bot = tenant.agents[event.agent_id]
    if bot.kind != "bot":
        raise Rejected(f"agent {event.agent_id!r} is not a bot; use TransferRequested")
    queue = queue_of(ctx.policy, event.queue) if event.queue is not None else None
    release_owner(ctx, tenant, conv)
    conv.kinds = "human"
    conv.excluded = ()
    conv.pinned = None
    conv.pin_until = None
    _redirect(conv, event.queue, event.skills)
    conv.priority += (queue or ctx.policy.queues[conv.queue]).handoff_priority_boost
    enqueue(ctx, tenant, conv, "handoff", rings="restart")


def _end_leg(ctx: Context, tenant: TenantState, conv: ConversationState, leg_id: str) -> bool:
    """End one live leg while the conversation goes on; False (nothing changed) when it
    is the last live leg, which ends the conversation itself."""
    leg = leg_of(conv, leg_id)
    if leg is None:
        raise Rejected(f"conversation {conv.conversation_id!r} has no leg {leg_id!r}")
    if leg.ended_ts is not None:
        raise Rejected(f"leg {leg_id!r} has already ended")
    if len(live_legs(conv)) == 1:
        return False
    leg.ended_ts = ctx.now
    refresh_lead(conv)
    transferring = handing_over(conv) and not conv.leg_wait
    withdrawn = refit_offer(ctx, tenant, conv)
    if conv.owner is not None and conv.stage == "assigned":
        rehold(ctx, tenant, tenant.agents[conv.owner], conv, active=False)
    waiting = conv.owner is None and conv.offer_agent is None and conv.stage != "scheduled"
    if conv.in_queue or waiting or (withdrawn and (transferring or conv.leg_wait)):
        enqueue(ctx, tenant, conv, "leg_ended", if_waiting="refresh", leg=leg_id)
    return True


def conversation_ended(ctx: Context, event: ConversationEnded) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = conversation_of(tenant, event.conversation_id)
    if event.leg is not None and _end_leg(ctx, tenant, conv, event.leg):
        return
    if conv.stage != "assigned" or conv.owner is None:
        raise Rejected(
            f"conversation {event.conversation_id!r} is {conv.stage}, not assigned; "
            "a customer leaving the queue is CustomerAbandoned"
        )
    if conv.offer_agent is not None:
        withdraw_offer(ctx, tenant, conv, "ended")
    leave_queue(ctx, tenant, conv)
    end_for_customer(ctx, tenant, conv)
    customer_left(ctx, tenant, conv.customer_id)
    for leg in live_legs(conv):
        leg.ended_ts = ctx.now
    conv.leg_wait = False
    agent = tenant.agents[conv.owner]
    stop_waiting(ctx, tenant, agent, conv)  # nothing live is left to wait for
    wrap_up_s = ctx.policy.queues[conv.queue].wrap_up_s
    if agent.kind == "human" and wrap_up_s > 0:
        conv.stage = "wrap_up"
        conv.pinned = None
        ctx.schedule("wrap_up", tenant.tenant, conv.conversation_id, ctx.now + ms(wrap_up_s), 0)
        return
    finish(ctx, tenant, conv)


def wrap_up_completed(ctx: Context, event: WrapUpCompleted) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = conversation_of(tenant, event.conversation_id)
    if conv.stage != "wrap_up" or conv.owner != event.agent_id:
        raise Rejected(
            f"conversation {event.conversation_id!r} is not in wrap-up with {event.agent_id!r}"
        )
    finish(ctx, tenant, conv)


def customer_abandoned(ctx: Context, event: CustomerAbandoned) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = conversation_of(tenant, event.conversation_id)
    if event.leg is not None and _end_leg(ctx, tenant, conv, event.leg):
        return
    if conv.owner is not None:
        raise Rejected(
            f"conversation {event.conversation_id!r} is {conv.stage} with {conv.owner!r}; "
            "a customer leaving it is ConversationEnded(by='customer')"
        )
    if conv.offer_agent is not None:
        withdraw_offer(ctx, tenant, conv, "abandoned")
    end_for_customer(ctx, tenant, conv)
    customer_left(ctx, tenant, conv.customer_id)
    close(ctx, tenant, conv)


def callback_requested(ctx: Context, event: CallbackRequested) -> None:
    tenant = known_tenant(ctx.state, event.tenant)
    conv = conversation_of(tenant, event.conversation_id)
    if conv.stage != "queued":
        raise Rejected(
            f"conversation {event.conversation_id!r} is {conv.stage}; "
            "a callback is requested from the queue"
        )
    horizon_s = ctx.policy.limits.clock_horizon_s
    if event.not_before is not None and event.not_before > ctx.now + ms(horizon_s):
        raise Rejected(f"not_before is more than limits.clock_horizon_s = {horizon_s:g} s ahead")
    conv.callback = True
    for leg in live_legs(conv):
        leg.media_class = "task"
    refresh_lead(conv)
    conv.kinds = "human"  # a person calls back
    if event.not_before is not None and event.not_before > ctx.now:
        leave_queue(ctx, tenant, conv)
        conv.stage = "scheduled"
        conv.route_gen += 1
        ctx.schedule(
            "callback", tenant.tenant, conv.conversation_id, event.not_before, conv.route_gen
        )
        return
    enqueue(ctx, tenant, conv, "callback")
