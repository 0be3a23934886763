"""Waiting: entering and leaving the queue, escalation rings, SLA, pins, and offers taken back.

A conversation waits in its queue (``in_queue``) from arrival until an agent is offered
it, and again whenever an offer fails or its agent leaves. A queue *episode* starts
at arrival, transfer, handoff, a due callback or a move to another queue: its
escalation rings count from the episode's start. When it finally ends (or is
abandoned), the conversation leaves the engine.
"""

from __future__ import annotations

from typing import Literal

from .capacity import offer_hold, release_owner, withdraw_offer
from .context import Context, ms
from .events import ConversationQueued, OfferExpiry, SlaBreached
from .legs import full_hold, live_legs
from .policy import CHANNEL_CLASS, REPLY_CLASSES
from .state import AgentState, ConversationState, TenantState

__all__ = [
    "agent_unavailable",
    "arm_ring",
    "check_sla",
    "close",
    "end_for_customer",
    "enqueue",
    "exclude",
    "finish",
    "handing_over",
    "leave_queue",
    "pin",
    "refit_offer",
    "retract_offer",
]


def enqueue(
    ctx: Context,
    tenant: TenantState,
    conv: ConversationState,
    reason: str,
    *,
    rings: Literal["restart", "keep"] = "keep",
    if_waiting: Literal["announce", "refresh"] = "announce",
    leg: str | None = None,
) -> None:
    """Put a conversation (back) in its queue, keeping its first-contact clock.

    ``rings="restart"`` starts a new queue episode (ring 0 from now); ``"keep"`` lets
    the episode's rings run on (an offer declined or lapsed, the agent left).
    ``if_waiting="refresh"``: a conversation already waiting only picks up what changed,
    without a new ``ConversationQueued``. ``leg`` names the leg that made it wait.
    """
    if if_waiting == "refresh" and conv.in_queue:
        if conv.owner is None:
            conv.stage = "queued"
        ctx.dirty_conv(tenant, conv)
        return
    if rings == "restart":
        conv.route_gen += 1
        conv.ring = 0
        conv.enqueued_ts = ctx.now
        arm_ring(ctx, tenant, conv)
    conv.in_queue = True
    if conv.owner is None:
        conv.stage = "queued"
    ctx.emit(
        ConversationQueued(
            tenant=tenant.tenant, ts=ctx.now,
            conversation_id=conv.conversation_id, queue=conv.queue, reason=reason, leg=leg,
        )
    )  # fmt: skip
    ctx.dirty_conv(tenant, conv)
    check_sla(ctx, tenant, conv)


def arm_ring(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """One pending timer per conversation: for the next escalation ring, if any."""
    rings = ctx.policy.queues[conv.queue].rings
    if conv.ring < len(rings):
        due = conv.enqueued_ts + ms(rings[conv.ring].after_s)
        ctx.schedule("ring", tenant.tenant, conv.conversation_id, due, conv.route_gen)


def leave_queue(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    conv.in_queue = False
    ctx.matchers[tenant.tenant].dequeue(conv.conversation_id)


def pin(
    ctx: Context, tenant: TenantState, conv: ConversationState, agent_id: str, wait_s: float
) -> None:
    """Only this agent may get the conversation for ``wait_s`` (while they are there)."""
    conv.pinned = agent_id
    conv.pin_until = ctx.now + ms(wait_s)
    ctx.schedule("pin", tenant.tenant, conv.conversation_id, conv.pin_until, conv.pin_until)


def check_sla(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """Emit ``SlaBreached`` once, when no human answered by the SLA deadline: for a
    conversation that started asynchronous (``REPLY_CLASSES``), by their first reply."""
    now = ctx.now
    if conv.sla_breached or now <= conv.sla_deadline:  # answered at the target is in time
        return
    if CHANNEL_CLASS[conv.legs[0].channel] in REPLY_CLASSES:
        answered = conv.replied
    else:
        answered = conv.answered_by_human or conv.owner is not None
    if not answered:
        conv.sla_breached = True
        ctx.emit(
            SlaBreached(
                tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
                target_s=conv.sla_target_s, waited_ms=now - conv.first_contact_ts,
            )
        )  # fmt: skip


def handing_over(conv: ConversationState) -> bool:
    """Its owner is handing it over: a warm transfer, or a leg that waits for anyone."""
    return conv.owner is not None and (conv.in_queue or conv.offer_agent is not None)


def refit_offer(ctx: Context, tenant: TenantState, conv: ConversationState) -> bool:
    """The live legs changed: withdraw an offer that no longer reserves what they cost its
    agent (that agent is preferred next time); True if one was withdrawn."""
    if conv.offer_agent is None:
        return False
    agent = tenant.agents[conv.offer_agent]
    if full_hold(ctx.policy, agent, live_legs(conv)) == offer_hold(conv):
        return False
    withdraw_offer(ctx, tenant, conv, "channel_switch")
    conv.preferred = agent.agent_id
    return True


def exclude(conv: ConversationState, agent_id: str) -> None:
    """This agent declined or let the offer lapse: never offer it to them again."""
    if agent_id not in conv.excluded:
        conv.excluded += (agent_id,)
    if conv.pinned == agent_id:
        conv.pinned = None
        conv.pin_until = None


def retract_offer(
    ctx: Context,
    tenant: TenantState,
    conv: ConversationState,
    expiry: OfferExpiry | None,
    reason: str,
) -> None:
    """The offered agent will not take it: withdraw, exclude them, and queue it again."""
    agent = withdraw_offer(ctx, tenant, conv, expiry)
    exclude(conv, agent.agent_id)
    enqueue(ctx, tenant, conv, reason)


def agent_unavailable(ctx: Context, tenant: TenantState, agent: AgentState) -> None:
    """The agent can take no new work: their offers go back, pins to them lapse."""
    ctx.sync(tenant, agent)
    for cid in list(agent.holding):
        conv = tenant.conversations[cid]
        if conv.offer_agent == agent.agent_id:
            retract_offer(ctx, tenant, conv, "agent_unavailable", "agent_unavailable")
    void_pins(ctx, tenant, agent)


def void_pins(ctx: Context, tenant: TenantState, agent: AgentState) -> None:
    """The agent left: conversations pinned to them may go to anyone now."""
    for cid in ctx.matchers[tenant.tenant].pinned_to(agent.agent_id):
        ctx.dirty_conv(tenant, tenant.conversations[cid])


def end_for_customer(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """The customer is done with it; a human who served them is remembered (stickiness)."""
    customer = tenant.customers.get(conv.customer_id)
    if customer is None:
        return
    if customer.open_conversation == conv.conversation_id:
        customer.open_conversation = None
    owner = tenant.agents.get(conv.owner) if conv.owner else None
    if owner is not None and owner.kind == "human":
        customer.last_agent = owner.agent_id
        customer.last_ended_ts = ctx.now


def close(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """The conversation leaves the state (ended and wrapped up, or abandoned)."""
    leave_queue(ctx, tenant, conv)
    del tenant.conversations[conv.conversation_id]
    for alias in conv.aliases:
        tenant.aliases.pop(alias, None)
    customer = tenant.customers.get(conv.customer_id)
    if customer is not None and customer.open_conversation == conv.conversation_id:
        customer.open_conversation = None


def finish(ctx: Context, tenant: TenantState, conv: ConversationState) -> None:
    """The owner is done (ended without wrap-up, or wrap-up over): free them and close it."""
    release_owner(ctx, tenant, conv)
    close(ctx, tenant, conv)
