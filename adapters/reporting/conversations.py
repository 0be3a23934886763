"""The fold of a conversation's journey: queue, offer, bot, agent, wrap-up, callback.

The engine's decisions are the truth (queued, offered, assigned, offer expired, escalated,
SLA breached, rejoined, wrap-up expired); inputs are used only for what no decision says:
an arrival's details, a decline, a transfer or handoff, an end, a wrap-up done, an
abandon, a callback's time. A customer's switch to another media class that makes the
engine release the agent ends the agent's segment at the ``channel_switch`` queueing, or
at the next assignment during a transfer (no event says it).

Legs. A conversation has one :class:`~.records.Leg` per contact the customer made in it:
the arrival that opened it, then each ``ConversationRejoined``. A leg is served when a
human agent first takes it on: an assignment that lists it, or ``LegJoined`` (a log
written before legs lists none: an assignment serves every live leg, and the agent who
holds the conversation goes on with a new leg unless a ``channel_switch`` queueing
releases them). A leg ends on its own (``ConversationEnded`` or ``CustomerAbandoned``
naming it while another leg is live) or with the conversation. Its wait runs from its
contact to that first human service (the first leg's from the first contact: bot time,
transfers and callbacks included). Each leg is in exactly one outcome: ``answered`` (a
human served it), ``abandoned`` (abandoned unserved; ``short_abandoned`` under the
short-abandon threshold), ``bot_resolved`` (only a bot served it), ``unanswered``
(ended unserved otherwise), ``unreplied`` (asynchronous, see below) or ``open``
(live, unanswered).

Asynchronous contacts (a leg whose channel's media class is in ``REPLY_CLASSES``:
messaging, email, social) are answered by the agent's first reply, not by the
assignment: the first ``MessageReceived`` out while a human agent holds the
conversation and the leg is live. A reply naming a leg answers that leg; one naming
none answers every live asynchronous leg. Such a leg a human took on but that ended
without a reply is ``unreplied`` (not met); one abandoned before a reply is
``abandoned``. Each customer message of an asynchronous leg (its contact first, then
each ``MessageReceived`` in: on the leg it names, else on the newest live asynchronous
leg) waits for the next agent message on that leg (a reply naming no leg answers
them all): a ``replies`` row, unanswered if the leg ends first. Bot messages and
messages while nobody holds the conversation are not replies.

A conversation's outcome, SLA and handled-by agree by one definition: it is
``answered`` when a human agent served any of its legs, and is then measured by the
wait from its first contact to that first human answer (``handled_by`` lists who served
it); otherwise ``abandoned`` when the customer gave up (not met, unless a short
abandon), ``bot_resolved`` when only a bot served it, ``unanswered`` when it ended
unserved, ``open`` while it lasts unanswered. A conversation answered and later
abandoned on a new leg is answered: the abandon is that leg's outcome. A conversation
whose first contact is asynchronous is answered by its first human reply (on any
leg, as the engine's SLA says), ``unreplied`` when a human took it on but it ended
without one.
"""

from __future__ import annotations

from omniroute.engine.events import (
    CallbackRequested,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationEscalated,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    HandoffRequested,
    LegJoined,
    MessageReceived,
    OfferDeclined,
    OfferExpired,
    SlaBreached,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
)
from omniroute.engine.legs import DEMAND_ORDER
from omniroute.engine.policy import CHANNEL_CLASS, REPLY_CLASSES, Queue

from .customers import resolve_customer
from .ledger import Handler, Ledger
from .records import NONE, Arrival, Conversation, Leg, Tenant

__all__ = ["DECISIONS", "INPUTS"]

_DEFAULT_QUEUE = Queue()
_CLASS: dict[str, str] = {str(k): str(v) for k, v in CHANNEL_CLASS.items()}
_RANK = {str(cls): i for i, cls in enumerate(DEMAND_ORDER)}


def _new_leg(leg_id: str, channel: str, queue: str, started: int) -> Leg:
    """A contact's leg; an asynchronous one's contact is its first customer message."""
    media_class = _CLASS.get(channel, "task")
    if media_class in REPLY_CLASSES:
        return Leg(leg_id=leg_id, channel=channel, media_class=media_class, queue=queue,
                   started=started, asynchronous=True, waiting=[started], messages=1)  # fmt: skip
    return Leg(leg_id=leg_id, channel=channel, media_class=media_class, queue=queue,
               started=started)  # fmt: skip


def _queued(lg: Ledger, d: ConversationQueued, ts: int) -> None:
    t = lg.tenant(d.tenant)
    reason = d.reason
    c: Conversation | None
    if reason == "arrived" and d.conversation_id not in t.convs:
        c = _create(lg, t, d, ts)
    else:
        c = t.convs.get(d.conversation_id)
        if c is None:
            return
    if d.leg is not None:
        c.wire_legs = lg.wire_legs = True
    c.cur_queue = d.queue
    if reason == "callback":
        c.callback = True
        if c.s_seg is not None:
            lg.end_seg(c, c.s_seg, ts, "due")
            c.s_seg = None
    elif (
        reason == "channel_switch"
        and d.leg is None  # a log before legs: the switch released the agent
        and c.stage == "assigned"
        and c.owner is not None
        and not c.transferring
    ):
        lg.release(c, ts, "channel_switch")
        new = c.legs[-1]
        if len(c.legs) > 1 and new.started == ts:  # the new leg was not served after all
            new.served = NONE
            new.served_by = None
            new.bot = False
    c.transferring = False
    c.in_queue = True
    if c.q_seg is None:
        c.q_seg = lg.open_seg(c, "queue", ts)
    if c.owner is None:
        c.stage = "offered" if c.offer_agent is not None else "queued"
    lg.touch(c)


def _create(lg: Ledger, t: Tenant, d: ConversationQueued, ts: int) -> Conversation:
    p = t.pending.pop(d.conversation_id, None)
    if p is None:  # the log starts after the arrival, or the arrival was lost
        p = Arrival(tenant=d.tenant, cid=d.conversation_id, ts=ts, channel="task",
                     contact_channel="task", contact_address=d.conversation_id)  # fmt: skip
    else:
        lg.drop_pending(p)
    customer_id = resolve_customer(lg, p, p.ts)
    queue = lg.policy.queues.get(d.queue, _DEFAULT_QUEUE)
    c = Conversation(
        tenant=d.tenant, cid=d.conversation_id, customer_id=customer_id,
        contact_channel=p.contact_channel, contact_address=p.contact_address,
        channels=[p.channel], channel=p.channel, media_class=_CLASS.get(p.channel, "task"),
        queue=d.queue, cur_queue=d.queue, priority=p.priority, language=p.language,
        first_contact=p.ts, sla_target_s=queue.sla_for(p.channel),  # type: ignore[arg-type]
    )  # fmt: skip
    c.legs = [_new_leg(c.cid, c.channel, d.queue, p.ts)]
    t.convs[c.cid] = c
    t.open_by_customer[customer_id] = c.cid
    return c


def _lead(c: Conversation) -> tuple[str, str]:
    """The media class and channel the conversation is routed as: its most demanding
    live leg's (the newest of that class)."""
    live = c.live_legs() or c.legs[-1:]
    top = min(_RANK.get(leg.media_class, len(_RANK)) for leg in live)
    lead = [leg for leg in live if _RANK.get(leg.media_class, len(_RANK)) == top][-1]
    return lead.media_class, lead.channel


def _serve(c: Conversation, legs: list[str] | None, agent_id: str, bot: bool, ts: int) -> None:
    """``agent_id`` takes on the live ``legs`` (every live leg when None)."""
    for leg in c.legs:
        if leg.ended >= 0 or (legs is not None and leg.leg_id not in legs):
            continue
        if bot:
            leg.bot = True
        elif leg.served < 0:
            leg.served = ts
            leg.served_by = agent_id


def _stop_waiting(lg: Ledger, c: Conversation, ts: int, outcome: str) -> None:
    """A leg left: if the agent who holds the conversation serves every live leg now,
    it no longer waits in a queue."""
    if c.owner is None or not c.in_queue or c.offer_agent is not None:
        return
    if all(leg.served >= 0 or leg.bot for leg in c.live_legs()):
        if c.q_seg is not None:
            lg.end_seg(c, c.q_seg, ts, outcome)
            c.q_seg = None
        c.in_queue = False


def _offered(lg: Ledger, d: ConversationOffered, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is None:
        return
    c.in_queue = False
    if c.q_seg is not None:
        lg.end_seg(c, c.q_seg, ts, "offered")
        c.q_seg = None
    if c.o_seg is not None:
        lg.end_seg(c, c.o_seg, ts, "replaced")
    c.o_seg = lg.open_seg(c, "offer", ts, d.agent_id)
    if c.first_offer < 0:
        c.first_offer = ts
    c.offer_agent = d.agent_id
    if d.legs:
        c.wire_legs = lg.wire_legs = True
    if c.owner is None:
        c.stage = "offered"
    lg.touch(c)


def _assigned(lg: Ledger, d: ConversationAssigned, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is None:
        return
    agent_id = d.agent_id
    c.in_queue = False
    if c.q_seg is not None:
        lg.end_seg(c, c.q_seg, ts, "assigned")
        c.q_seg = None
    if c.o_seg is not None:
        lg.end_seg(c, c.o_seg, ts, "accepted" if c.o_seg.agent == agent_id else "withdrawn")
        c.o_seg = None
    if c.owner is not None and c.owner != agent_id:
        lg.release(c, ts, "reopened" if c.stage == "wrap_up" else "transferred")
    a = lg.agent(d.tenant, agent_id)
    bot = a.kind == "bot"
    if c.h_seg is None:
        c.h_seg = lg.open_seg(c, "bot" if bot else "agent", ts, agent_id)
    c.owner = agent_id
    c.owner_bot = bot
    c.stage = "assigned"
    c.offer_agent = None
    c.transferring = False
    if c.cid not in a.holding:
        a.holding.append(c.cid)
    first_human = False
    if bot:
        if c.first_bot < 0:
            c.first_bot = ts
    else:
        if c.first_answer < 0:
            c.first_answer = ts
            c.answered_by = agent_id
            first_human = True
        c.last_agent = agent_id
    if d.legs:
        c.wire_legs = lg.wire_legs = True
    _serve(c, d.legs or None, agent_id, bot, ts)
    if agent_id not in c.handled_by:
        c.handled_by.append(agent_id)
    c.nassign += 1
    lg.assignments.append((
        c.tenant, c.cid, c.nassign, agent_id, a.kind, ts, d.wait_ms, first_human,
        d.score, d.why, c.channel, c.media_class, c.cur_queue,
    ))  # fmt: skip
    lg.touch(c)


def _offer_expired(lg: Ledger, d: OfferExpired, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is None:
        return
    if c.o_seg is not None and c.o_seg.agent == d.agent_id:
        lg.end_seg(c, c.o_seg, ts, d.reason)
        c.o_seg = None
    if c.offer_agent == d.agent_id:
        c.offer_agent = None
        if c.owner is None:
            c.stage = "queued"
    lg.touch(c)


def _escalated(lg: Ledger, d: ConversationEscalated, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is not None:
        c.escalations += 1
        lg.touch(c)


def _breached(lg: Ledger, d: SlaBreached, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is not None:
        c.sla_breached = True
        c.sla_target_s = d.target_s
        lg.touch(c)


def _rejoined(lg: Ledger, d: ConversationRejoined, ts: int) -> None:
    t = lg.tenant(d.tenant)
    c = t.convs.get(d.conversation_id)
    p = t.pending.pop(d.new_conversation_id, None)
    if p is not None:
        lg.drop_pending(p)
        resolve_customer(lg, p, p.ts)
    if c is None:
        return
    c.rejoins += 1
    c.aliases.append(d.new_conversation_id)
    t.aliases[d.new_conversation_id] = c.cid
    if d.channel not in c.channels:
        c.channels.append(d.channel)
    if c.stage == "scheduled":  # back before the callback: it is void, its legs end
        lg.end_legs(c, ts, "rejoined")
        if c.s_seg is not None:
            lg.end_seg(c, c.s_seg, ts, "rejoined")
            c.s_seg = None
        c.stage = "queued"
    leg = _new_leg(
        d.new_conversation_id,
        d.channel,
        p.queue if p is not None else c.cur_queue,
        p.ts if p is not None else ts,
    )
    c.legs.append(leg)
    wire = c.wire_legs or lg.wire_legs
    if not wire and c.stage == "assigned" and c.owner is not None:
        # a log before legs: the agent who holds it goes on with it (unless the
        # channel_switch queueing that follows releases them)
        _serve(c, [leg.leg_id], c.owner, c.owner_bot, ts)
    c.channel = d.channel
    new_class = leg.media_class
    if wire:  # routed as its most demanding live leg
        new_class, c.channel = _lead(c)
    if new_class != c.media_class:
        c.transferring = c.owner is not None and (c.in_queue or c.offer_agent is not None)
        if p is not None and not c.transferring:
            # routed as the new lead leg asks from now on, queued again or not (the
            # engine's _route_as): its wrap-up and later assignments are that queue's
            c.cur_queue = p.queue
        c.media_class = new_class
        if c.stage == "assigned" and c.h_seg is not None:
            old = c.h_seg
            lg.end_seg(c, old, ts, "channel_switch")
            c.h_seg = lg.open_seg(c, old.kind, ts, old.agent)
    lg.touch(c)


def _leg_joined(lg: Ledger, d: LegJoined, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is None:
        return
    c.wire_legs = lg.wire_legs = True
    bot = lg.agent(d.tenant, d.agent_id).kind == "bot"
    _serve(c, [d.leg], d.agent_id, bot, ts)
    if not bot and d.agent_id not in c.handled_by:
        c.handled_by.append(d.agent_id)
    _stop_waiting(lg, c, ts, "leg_joined")
    lg.touch(c)


def _end_leg(lg: Ledger, c: Conversation, leg_id: str, ts: int, by: str) -> bool:
    """End only the leg ``leg_id`` while another leg is live; False when it is the last
    live leg (the whole conversation ends) or not a live leg of ``c``."""
    leg = c.leg(leg_id)
    if leg is None or leg.ended >= 0 or len(c.live_legs()) < 2:
        return False
    lg.end_leg(c, leg, ts, by)
    if c.wire_legs or lg.wire_legs:
        c.media_class, c.channel = _lead(c)
    _stop_waiting(lg, c, ts, by)
    lg.touch(c)
    return True


def _wrap_expired(lg: Ledger, d: WrapUpExpired, ts: int) -> None:
    c = lg.conv(d.tenant, d.conversation_id)
    if c is not None and c.stage == "wrap_up" and c.owner == d.agent_id:
        lg.close(c, ts, "expired")


def _arrived(lg: Ledger, e: ConversationArrived, ts: int) -> None:
    t = lg.tenant(e.tenant)
    p = Arrival(
        tenant=e.tenant, cid=e.conversation_id, ts=ts, channel=e.channel,
        contact_channel=e.contact.channel, contact_address=e.contact.address,
        customer_id=e.customer_id, priority=e.priority, language=e.language, queue=e.queue,
    )  # fmt: skip
    old = t.pending.get(e.conversation_id)
    if old is not None:
        lg.drop_pending(old)
    t.pending[e.conversation_id] = p
    lg.dirty_pending[(e.tenant, e.conversation_id)] = p


def _declined(lg: Ledger, e: OfferDeclined, ts: int) -> None:
    c = lg.conv(e.tenant, e.conversation_id)
    if c is None or c.offer_agent != e.agent_id:
        return
    if c.o_seg is not None:
        lg.end_seg(c, c.o_seg, ts, "declined")
        c.o_seg = None
    c.offer_agent = None
    if c.owner is None:
        c.stage = "queued"
    lg.touch(c)


def _held(lg: Ledger, tenant: str, cid: str, agent_id: str) -> Conversation | None:
    c = lg.conv(tenant, cid)
    if c is None or c.stage != "assigned" or c.owner != agent_id:
        return None
    if c.in_queue or c.offer_agent is not None:
        return None
    return c


def _transfer(lg: Ledger, e: TransferRequested, ts: int) -> None:
    c = _held(lg, e.tenant, e.conversation_id, e.agent_id)
    if c is None:
        return
    c.transfers += 1
    if e.mode == "cold":
        lg.release(c, ts, "transfer")
        c.stage = "queued"
    lg.touch(c)


def _handoff(lg: Ledger, e: HandoffRequested, ts: int) -> None:
    c = _held(lg, e.tenant, e.conversation_id, e.agent_id)
    if c is None:
        return
    c.handoffs += 1
    lg.release(c, ts, "handoff")
    c.stage = "queued"
    lg.touch(c)


def _ended(lg: Ledger, e: ConversationEnded, ts: int) -> None:
    c = lg.conv(e.tenant, e.conversation_id)
    if c is None:
        return
    if e.leg is not None:
        leg = c.leg(e.leg)
        if leg is None or leg.ended >= 0 or _end_leg(lg, c, e.leg, ts, e.by):
            return
    if c.stage != "assigned" or c.owner is None:
        return
    lg.end_legs(c, ts, e.by)
    c.ended = ts
    c.ended_by = e.by
    t = lg.tenant(c.tenant)
    if t.open_by_customer.get(c.customer_id) == c.cid:
        del t.open_by_customer[c.customer_id]
    for attr in ("q_seg", "o_seg"):
        s = getattr(c, attr)
        if s is not None:
            lg.end_seg(c, s, ts, "ended")
            setattr(c, attr, None)
    c.in_queue = False
    c.offer_agent = None
    wrap_up_s = lg.policy.queues.get(c.cur_queue, _DEFAULT_QUEUE).wrap_up_s
    if not c.owner_bot and wrap_up_s > 0:
        if c.h_seg is not None:
            lg.end_seg(c, c.h_seg, ts, "ended")
            c.h_seg = None
        c.w_seg = lg.open_seg(c, "wrap_up", ts, c.owner)
        c.stage = "wrap_up"
        lg.touch(c)
        return
    lg.close(c, ts, "ended")


def _message(lg: Ledger, e: MessageReceived, ts: int) -> None:
    c = lg.conv(e.tenant, e.conversation_id)
    if c is None or c.ended >= 0:
        return
    if e.direction == "in":
        if e.leg is not None:
            leg = c.leg(e.leg)
        else:  # the customer writes on their newest live asynchronous contact
            leg = next((x for x in reversed(c.legs) if x.asynchronous and x.ended < 0), None)
        if leg is not None and leg.asynchronous and leg.ended < 0:
            leg.waiting.append(ts)
            leg.messages += 1
            lg.touch(c)
        return
    agent = c.owner
    if agent is None or c.owner_bot:
        return
    if c.first_reply < 0:
        c.first_reply = ts
        c.replied_by = agent
    for leg in c.legs:
        if leg.asynchronous and leg.ended < 0 and e.leg in (None, leg.leg_id):
            lg.reply(c, leg, ts, agent)
    lg.touch(c)


def _wrapped(lg: Ledger, e: WrapUpCompleted, ts: int) -> None:
    c = lg.conv(e.tenant, e.conversation_id)
    if c is not None and c.stage == "wrap_up" and c.owner == e.agent_id:
        lg.close(c, ts, "completed")


def _abandoned(lg: Ledger, e: CustomerAbandoned, ts: int) -> None:
    c = lg.conv(e.tenant, e.conversation_id)
    if c is None:
        return
    if e.leg is not None:
        leg = c.leg(e.leg)
        if leg is None or leg.ended >= 0 or _end_leg(lg, c, e.leg, ts, "abandoned"):
            return
    if c.owner is not None:
        return
    c.abandoned = True
    lg.close(c, ts, "abandoned")


def _callback(lg: Ledger, e: CallbackRequested, ts: int) -> None:
    c = lg.conv(e.tenant, e.conversation_id)
    if c is None or c.stage != "queued" or c.owner is not None:
        return
    c.callback = True
    c.media_class = "task"
    for leg in c.live_legs():
        leg.media_class = "task"
        leg.callback = True
    if c.q_seg is not None:
        lg.end_seg(c, c.q_seg, ts, "callback")
        c.q_seg = None
    if e.not_before is not None and e.not_before > ts:
        c.stage = "scheduled"
        c.in_queue = False
        c.s_seg = lg.open_seg(c, "scheduled", ts)
    lg.touch(c)


DECISIONS: dict[type, Handler] = {
    ConversationQueued: _queued,
    ConversationOffered: _offered,
    ConversationAssigned: _assigned,
    OfferExpired: _offer_expired,
    ConversationEscalated: _escalated,
    SlaBreached: _breached,
    ConversationRejoined: _rejoined,
    LegJoined: _leg_joined,
    WrapUpExpired: _wrap_expired,
}
"""The decisions on conversations the fold takes, by event type."""
INPUTS: dict[type, Handler] = {
    ConversationArrived: _arrived,
    OfferDeclined: _declined,
    TransferRequested: _transfer,
    HandoffRequested: _handoff,
    ConversationEnded: _ended,
    MessageReceived: _message,
    WrapUpCompleted: _wrapped,
    CustomerAbandoned: _abandoned,
    CallbackRequested: _callback,
}
"""The inputs on conversations the fold takes, by event type."""
