"""New contacts: who the customer is, a new conversation, or a rejoin of their open one.

A customer is known by their contacts (``channel:address``); ``ContactsLinked`` merges
what the engine knows of two identities. A customer with an open conversation who
writes on another contact rejoins it (continuity) instead of opening a second one.

The engine remembers a customer only while routing needs them (bounded state; the
history, the customer-360 view and the identity links for good are the projection's):

- while they have an open conversation;
- after it, while a returning contact could still be sticky: until the longest
  ``sticky_window_s`` of the policy's queues has passed since their last conversation
  served by a human ended;
- while their identity links are kept: a customer named by ``ContactsLinked`` or by an
  arrival's ``customer_id`` keeps its links for ``limits.customer_retention_s`` after
  the last link or the end of their last conversation, whichever is later. An anonymous
  customer (``contact:<channel>:<address>``, never linked) has no such extra time: with
  no sticky agent, it is forgotten as its conversation ends.

Forgetting is part of the fold, driven by event time: each idle customer has one entry
in its tenant's ``forget`` heap (``CustomerState.forget_at``), looked at when an event
of that tenant moves the clock to or past its due time (before the event is applied,
after the timers it made due), so a snapshot plus its tail replays to the same state as
the whole log. Nothing is scanned: forgetting costs one heap entry per idle customer.
A forgotten customer's contacts lose their customer: the same contact arriving again
starts as a new anonymous customer (or the ``customer_id`` its arrival names), exactly as
a never-seen contact would, with no sticky agent and no link to its other contacts.
The forget heap is not a timer: it does not show in ``Engine.next_deadline``, and an idle
tenant's customers are forgotten at its next event.
"""

from __future__ import annotations

import heapq
import sys

from .capacity import rehold
from .context import Context, ms
from .events import (
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationRejoined,
)
from .legs import live_legs, refresh_lead
from .policy import CHANNEL_CLASS
from .queueing import enqueue, handing_over, pin, refit_offer
from .state import ConversationState, CustomerState, Leg, TenantState, shared_skills
from .validation import Rejected

__all__ = ["contacts_linked", "conversation_arrived", "customer_left", "forget_due"]


def _contact_key(contact: Contact) -> str:
    return f"{contact.channel}:{contact.address}"


def conversation_arrived(ctx: Context, event: ConversationArrived) -> None:
    policy = ctx.policy
    queue_name = event.queue
    if queue_name not in policy.queues:
        if policy.unknown_queue != "default":
            raise Rejected(f"unknown queue {queue_name!r}")
        queue_name = "default"
    queue_name = sys.intern(queue_name)
    existing = ctx.state.tenants.get(event.tenant)
    if existing is not None and (
        event.conversation_id in existing.conversations or event.conversation_id in existing.aliases
    ):
        raise Rejected(f"conversation {event.conversation_id!r} is already open")
    tenant = ctx.tenant(event.tenant)
    customer = _customer_for(tenant, event.contact, event.customer_id)
    if event.customer_id and event.customer_id != f"contact:{_contact_key(event.contact)}":
        _keep_links(ctx, customer)  # the producer named them: a link, as ContactsLinked makes
    if customer.open_conversation is not None:
        conv = tenant.conversations[customer.open_conversation]
        _rejoin(ctx, tenant, conv, event, queue_name)
        return
    now = ctx.now
    queue = policy.queues[queue_name]
    target = queue.sla_for(event.channel)
    media_class = CHANNEL_CLASS[event.channel]
    leg = Leg(
        leg_id=event.conversation_id, channel=event.channel, contact=event.contact,
        media_class=media_class, started_ts=now,
    )  # fmt: skip
    conv = ConversationState(
        conversation_id=event.conversation_id, seq=ctx.next_seq(), channel=event.channel,
        media_class=media_class, contact=event.contact, legs=(leg,),
        customer_id=customer.customer_id, queue=queue_name, skills=shared_skills(event.skills),
        optional_skills=shared_skills(event.optional_skills), language=_interned(event.language),
        priority=event.priority + queue.priority, first_contact_ts=now, last_in_ts=now,
        sla_deadline=now + ms(target), sla_target_s=target,
    )  # fmt: skip
    tenant.conversations[conv.conversation_id] = conv
    customer.open_conversation = conv.conversation_id
    ctx.schedule("sla", tenant.tenant, conv.conversation_id, conv.sla_deadline + 1, 0)
    if queue.bot_first:
        conv.kinds = "bot"
        conv.bot_until = now + ms(queue.bot_wait_s)
        ctx.schedule("bot", tenant.tenant, conv.conversation_id, conv.bot_until, conv.bot_until)
    elif (
        customer.last_agent is not None
        and customer.last_ended_ts is not None
        and now - customer.last_ended_ts <= ms(queue.sticky_window_s)
        and customer.last_agent in tenant.agents
    ):
        conv.preferred = customer.last_agent
        if queue.sticky_wait_s > 0:
            pin(ctx, tenant, conv, customer.last_agent, queue.sticky_wait_s)
    enqueue(ctx, tenant, conv, "arrived", rings="restart")


def _interned(name: str | None) -> str | None:
    """One copy of a name many conversations hold (a queue, a language)."""
    return sys.intern(name) if name is not None else None


def _customer_for(tenant: TenantState, contact: Contact, customer_id: str | None) -> CustomerState:
    key = _contact_key(contact)
    cid = customer_id or tenant.contact_customer.get(key) or f"contact:{key}"
    customer = tenant.customers.get(cid)
    if customer is None:
        customer = CustomerState(customer_id=cid)
        tenant.customers[cid] = customer
    if tenant.contact_customer.get(key) != cid:
        tenant.contact_customer[key] = cid
    if contact not in customer.contacts:
        customer.contacts += (contact,)
    return customer


def _rejoin(
    ctx: Context, tenant: TenantState, conv: ConversationState, event: ConversationArrived,
    queue_name: str,
) -> None:  # fmt: skip
    """A new contact of a customer with an open conversation joins it as a new leg.

    Its agent takes the leg on if they have room, else it waits for them (``capacity``).
    A waiting conversation whose new leg is now its most demanding is routed as the new
    contact asks (its queue, skills, language; never a lower priority), unless a
    transfer is under way: who can serve the customer depends on the channel they are on.
    """
    now = ctx.now
    ctx.emit(
        ConversationRejoined(
            tenant=tenant.tenant, ts=now, conversation_id=conv.conversation_id,
            new_conversation_id=event.conversation_id, channel=event.channel,
            agent_id=conv.owner,
        )
    )  # fmt: skip
    tenant.aliases[event.conversation_id] = conv.conversation_id
    conv.aliases += (event.conversation_id,)
    conv.last_in_ts = now
    scheduled = conv.stage == "scheduled"
    if scheduled:  # back before their callback: the callback is void
        conv.callback = False
        for old in live_legs(conv):
            old.ended_ts = now
    leg = Leg(
        leg_id=event.conversation_id, channel=event.channel, contact=event.contact,
        media_class=CHANNEL_CLASS[event.channel], started_ts=now,
    )  # fmt: skip
    conv.legs += (leg,)
    transferring = handing_over(conv) and not conv.leg_wait
    moved = refresh_lead(conv) and not transferring and _route_as(ctx, conv, event, queue_name)
    withdrawn = refit_offer(ctx, tenant, conv)
    if scheduled:
        enqueue(ctx, tenant, conv, "rejoined", rings="restart", leg=leg.leg_id)
        return
    if conv.owner is not None and conv.stage == "assigned":
        rehold(ctx, tenant, tenant.agents[conv.owner], conv, active=True)
        if conv.in_queue or (withdrawn and (transferring or conv.leg_wait)):
            _requeue(ctx, tenant, conv, leg.leg_id, moved)
        return
    if conv.offer_agent is not None:
        return  # the offer still stands: it covers the new leg
    _requeue(ctx, tenant, conv, leg.leg_id, moved)


def _requeue(
    ctx: Context, tenant: TenantState, conv: ConversationState, leg: str, moved: bool
) -> None:
    """Wait (again) for an agent after a new leg; in another queue, its rings start now."""
    if moved:
        enqueue(ctx, tenant, conv, "channel_switch", rings="restart", leg=leg)
    else:
        enqueue(ctx, tenant, conv, "channel_switch", if_waiting="refresh", leg=leg)


def _route_as(
    ctx: Context, conv: ConversationState, event: ConversationArrived, queue_name: str
) -> bool:
    """Route ``conv`` as the new contact asks; True if that moved it to another queue
    (whose rings it has not climbed: ring 0 until it waits there)."""
    queue = ctx.policy.queues[queue_name]
    moved = conv.queue != queue_name
    conv.queue = queue_name
    if moved:
        conv.ring = 0
    conv.skills = shared_skills(event.skills)
    conv.optional_skills = shared_skills(event.optional_skills)
    if event.language is not None:
        conv.language = _interned(event.language)
    conv.priority = max(conv.priority, event.priority + queue.priority)
    return moved


def contacts_linked(ctx: Context, event: ContactsLinked) -> None:
    if not event.contacts:
        raise Rejected("contacts must not be empty")
    tenant = ctx.tenant(event.tenant)
    customer = tenant.customers.get(event.customer_id)
    if customer is None:
        customer = CustomerState(customer_id=event.customer_id)
        tenant.customers[event.customer_id] = customer
    _keep_links(ctx, customer)
    left: dict[str, CustomerState] = {}
    for contact in event.contacts:
        key = _contact_key(contact)
        previous_id = tenant.contact_customer.get(key)
        tenant.contact_customer[key] = customer.customer_id
        if contact not in customer.contacts:
            customer.contacts += (contact,)
        previous = tenant.customers.get(previous_id) if previous_id else None
        if previous is None or previous is customer:
            continue
        if customer.open_conversation is None and previous.open_conversation is not None:
            customer.open_conversation = previous.open_conversation
            tenant.conversations[previous.open_conversation].customer_id = customer.customer_id
            previous.open_conversation = None
        if customer.last_agent is None and previous.last_agent is not None:
            customer.last_agent = previous.last_agent
            customer.last_ended_ts = previous.last_ended_ts
        left[previous.customer_id] = previous
    for previous in left.values():  # it may have lost its open conversation and contacts
        _arm(ctx, tenant, previous)
    _arm(ctx, tenant, customer)


# --- forgetting customers (bounded state) ---------------------------------------------------


def customer_left(ctx: Context, tenant: TenantState, customer_id: str) -> None:
    """The customer's conversation ended (or was abandoned): from now on they are kept only
    while stickiness or their links need them (see the module docstring)."""
    customer = tenant.customers.get(customer_id)
    if customer is None or customer.open_conversation is not None:
        return
    if customer.linked_until:
        _keep_links(ctx, customer)
    _arm(ctx, tenant, customer)


def forget_due(ctx: Context, tenant: TenantState) -> None:
    """Forget the customers whose due time the tenant's clock has reached and whom nothing
    holds any more; those still held are looked at again later (or when they leave)."""
    heap = tenant.forget
    now = tenant.clock
    while heap and heap[0][0] <= now:
        due, customer_id = heapq.heappop(heap)
        customer = tenant.customers.get(customer_id)
        if customer is None or customer.forget_at != due:
            continue  # pragma: no cover - one entry per customer, popped before forgetting
        customer.forget_at = 0
        _arm(ctx, tenant, customer)


def _keep_links(ctx: Context, customer: CustomerState) -> None:
    until = ctx.now + ms(ctx.policy.limits.customer_retention_s)
    customer.linked_until = max(customer.linked_until, until, 1)


def _kept_until(ctx: Context, customer: CustomerState) -> int:
    """When nothing but an open conversation holds the customer any more (epoch ms)."""
    until = customer.linked_until
    if customer.last_agent is not None and customer.last_ended_ts is not None:
        sticky_ms = max((ms(q.sticky_window_s) for q in ctx.policy.queues.values()), default=0)
        until = max(until, customer.last_ended_ts + sticky_ms + 1)  # sticky up to and at the end
    return until


def _arm(ctx: Context, tenant: TenantState, customer: CustomerState) -> None:
    """An idle customer: forget them now if nothing holds them, else make sure one entry of
    the forget heap will look at them again (an earlier one re-arms when it is due)."""
    if customer.open_conversation is not None or customer.forget_at:
        return
    due = _kept_until(ctx, customer)
    if due > tenant.clock:
        customer.forget_at = due
        heapq.heappush(tenant.forget, (due, customer.customer_id))
        return
    del tenant.customers[customer.customer_id]
    mapping = tenant.contact_customer
    for contact in customer.contacts:
        key = _contact_key(contact)
        if mapping.get(key) == customer.customer_id:
            del mapping[key]
