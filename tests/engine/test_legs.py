"""Channel legs: a customer on several channels of one conversation at once (issue 13).

The capacity a conversation takes is that of its most demanding live leg, within the class
maximum of every live leg's class; a new leg the agent has no room for waits for them
(``sticky_wait_s``), then goes to anyone; decisions name the leg.
"""

from __future__ import annotations

from omniroute.engine.events import (
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    ConversationQueued,
    CustomerAbandoned,
    EventRejected,
    LegJoined,
    OfferAccepted,
    OfferExpired,
    TransferRequested,
    WrapUpCompleted,
)
from omniroute.engine.matching import CLASS_INDEX
from tests.support.desk import Desk, kinds, of_type

AUTO = """
[queues.default]
offer_mode = "auto"
sticky_wait_s = 30
"""

OFFER = """
[queues.default]
sticky_wait_s = 30
"""

VOICE, EMAIL, CHAT = CLASS_INDEX["voice"], CLASS_INDEX["email"], CLASS_INDEX["chat"]


def _assigned_to(out: list[object]) -> list[str]:
    return [d.agent_id for d in of_type(out, ConversationAssigned)]  # type: ignore[arg-type]


def test_an_email_during_a_call_keeps_the_call_cost_and_no_second_call_comes() -> None:
    """Defect 1: the email leg used to replace the call's cost, and a second call came."""
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("call-1", "voice", customer_id="cust")
    out = desk.at(10).arrive("mail-1", "email", customer_id="cust")
    assert of_type(out, LegJoined)[0].leg == "mail-1"
    ann = desk.agent_state("ann")
    assert ann.units[VOICE] == 100 and ann.counts[VOICE] == 1 and ann.counts[EMAIL] == 1
    out = desk.at(20).arrive("call-2", "voice", customer_id="other")
    assert _assigned_to(out) == [] and desk.conv("call-2").stage == "queued"
    # the call hangs up, the email goes on: it costs an email, and the next call may come
    out = desk.at(30).send(
        ConversationEnded, conversation_id="call-1", leg="call-1", by="customer"
    )  # fmt: skip
    assert _assigned_to(out) == ["ann"]
    assert ann.counts[VOICE] == 1 and ann.counts[EMAIL] == 1 and ann.units[EMAIL] == 10
    conv = desk.conv("mail-1")
    assert conv.media_class == "email" and [leg.ended_ts for leg in conv.legs] == [30_000, None]


def test_the_last_live_leg_ending_ends_the_conversation() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("call-1", "voice", customer_id="cust")
    desk.at(5).arrive("mail-1", "email", customer_id="cust")
    desk.at(6).send(ConversationEnded, conversation_id="call-1", leg="call-1")
    desk.at(7).send(ConversationEnded, conversation_id="mail-1", leg="mail-1")
    conv = desk.conv("call-1")
    assert conv.stage == "wrap_up" and all(leg.ended_ts is not None for leg in conv.legs)
    desk.at(8).send(WrapUpCompleted, conversation_id="call-1", agent_id="ann")
    assert desk.conv("call-1") is None
    ann = desk.agent_state("ann")
    assert sum(ann.units) == 0 and sum(ann.counts) == 0 and ann.holding == []


def test_a_call_after_a_chat_waits_for_its_agent_then_joins() -> None:
    desk = Desk(AUTO + "wrap_up_s = 0\n")
    desk.agent("ann")
    desk.arrive("chat-1", "webchat", customer_id="cust")
    desk.arrive("chat-2", "webchat", customer_id="other")
    desk.arrive("call-x", "voice", customer_id="third")  # waits: chats hold ann
    out = desk.at(3).arrive("call-1", "voice", customer_id="cust")
    assert kinds(out) == ["conversation.rejoined"]  # the leg waits for ann
    ann = desk.agent_state("ann")
    assert ann.pending == ["chat-1"] and not ann.routable
    assert ann.units[CHAT] == 66 and ann.counts[VOICE] == 0
    # the other chat ends: the call leg joins ann, ahead of call-x, which keeps waiting
    out = desk.at(10).send(ConversationEnded, conversation_id="chat-2")
    joined = of_type(out, LegJoined)
    assert [(j.leg, j.agent_id) for j in joined] == [("call-1", "ann")]
    assert ann.units[VOICE] == 100 and ann.units[CHAT] == 0
    assert ann.counts[VOICE] == 1 and ann.counts[CHAT] == 1
    assert desk.conv("call-x").stage == "queued"


def test_a_leg_that_waits_past_sticky_wait_goes_to_anyone_with_all_live_legs() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("chat-1", "webchat", customer_id="cust")
    desk.at(1).send(OfferAccepted, conversation_id="chat-1", agent_id="ann")
    desk.arrive("chat-2", "webchat", customer_id="c2")
    desk.at(2).send(OfferAccepted, conversation_id="chat-2", agent_id="ann")
    desk.agent("bob")
    out = desk.at(5).arrive("call-1", "voice", customer_id="cust")
    assert of_type(out, LegJoined) == [] and of_type(out, ConversationOffered) == []
    out = desk.tick(35)  # sticky_wait_s = 30 after the rejoin
    queued = of_type(out, ConversationQueued)
    assert [(q.reason, q.leg) for q in queued] == [("leg_waiting", "call-1")]
    offers = of_type(out, ConversationOffered)
    assert [(o.agent_id, o.legs) for o in offers] == [("bob", ["chat-1", "call-1"])]
    assert desk.conv("chat-1").owner == "ann"  # ann still serves the chat meanwhile
    out = desk.at(36).send(OfferAccepted, conversation_id="chat-1", agent_id="bob")
    assigned = of_type(out, ConversationAssigned)[0]
    assert assigned.agent_id == "bob" and assigned.legs == ["chat-1", "call-1"]
    ann, bob = desk.agent_state("ann"), desk.agent_state("bob")
    assert ann.pending == [] and ann.counts[CHAT] == 1 and ann.routable
    assert bob.units[VOICE] == 100 and bob.counts[VOICE] == 1 and bob.counts[CHAT] == 1


def test_room_for_the_waiting_leg_before_anyone_takes_it_withdraws_the_other_offer() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("chat-1", "webchat", customer_id="cust")
    desk.at(1).send(OfferAccepted, conversation_id="chat-1", agent_id="ann")
    desk.arrive("chat-2", "webchat", customer_id="c2")
    desk.at(2).send(OfferAccepted, conversation_id="chat-2", agent_id="ann")
    desk.agent("bob")
    desk.at(5).arrive("call-1", "voice", customer_id="cust")
    desk.tick(35)  # offered to bob
    desk.at(40).send(ConversationEnded, conversation_id="chat-2")
    out = desk.at(41).send(WrapUpCompleted, conversation_id="chat-2", agent_id="ann")
    expired = of_type(out, OfferExpired)
    assert [(e.agent_id, e.reason) for e in expired] == [("bob", "leg_joined")]
    assert [(j.leg, j.agent_id) for j in of_type(out, LegJoined)] == [("call-1", "ann")]
    conv = desk.conv("chat-1")
    assert conv.owner == "ann" and not conv.in_queue and not conv.leg_wait


def test_a_multi_leg_conversation_goes_only_to_an_agent_below_every_class_max() -> None:
    policy = """
[profiles.default]
budget = 100
classes.voice = { cost = 100, max = 1 }
classes.email = { cost = 10, max = 2, interruptible_by = ["voice"] }
[profiles.bot]
budget = 1000
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
"""
    desk = Desk(policy)
    desk.agent("ann")
    desk.arrive("call-1", "voice", customer_id="cust")
    desk.at(1).arrive("mail-1", "email", customer_id="cust")
    desk.agent("bob")
    desk.arrive("m2", "email")
    desk.arrive("m3", "email")  # bob: two emails, at his email max
    assert desk.agent_state("bob").counts[EMAIL] == 2
    out = desk.at(2).send(
        TransferRequested, conversation_id="call-1", agent_id="ann", to_queue="default"
    )  # fmt: skip
    assert _assigned_to(out) == []  # bob could take a call, but not its email leg
    desk.at(3).send(ConversationEnded, conversation_id="m2")
    assert desk.conv("call-1").owner == "bob"
    bob = desk.agent_state("bob")
    assert bob.counts[EMAIL] == 2 and bob.counts[VOICE] == 1


def test_a_dropped_leg_leaves_the_conversation_waiting_on_the_other() -> None:
    desk = Desk(OFFER)
    desk.arrive("chat-1", "webchat", customer_id="cust")
    desk.at(1).arrive("call-1", "voice", customer_id="cust")
    assert desk.conv("chat-1").media_class == "voice"
    out = desk.at(2).send(CustomerAbandoned, conversation_id="chat-1", leg="call-1")
    assert of_type(out, EventRejected) == []
    conv = desk.conv("chat-1")
    assert conv.media_class == "chat" and conv.stage == "queued"
    desk.agent("ann")
    assert of_type(desk.log, ConversationOffered)[-1].legs == ["chat-1"]


def test_a_leg_that_is_unknown_or_already_ended_is_rejected() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("call-1", "voice", customer_id="cust")
    desk.at(1).arrive("mail-1", "email", customer_id="cust")
    out = desk.at(2).send(ConversationEnded, conversation_id="call-1", leg="nope")
    assert "has no leg 'nope'" in of_type(out, EventRejected)[0].reason
    desk.at(3).send(ConversationEnded, conversation_id="call-1", leg="call-1")
    out = desk.at(4).send(ConversationEnded, conversation_id="call-1", leg="call-1")
    assert "already ended" in of_type(out, EventRejected)[0].reason


def test_a_conversation_ending_while_its_leg_waits_lets_the_next_waiting_leg_join() -> None:
    """Ann's two chat customers both open a leg: the call cannot fit, the email could but
    waits behind it; the caller's conversation ends (wrap-up keeps its chat): the email
    joins at once, and Ann is free for new work again."""
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("chat-1", "webchat", customer_id="c1")
    desk.arrive("chat-2", "webchat", customer_id="c2")
    desk.at(1).arrive("call-1", "voice", customer_id="c1")
    desk.at(2).arrive("mail-2", "email", customer_id="c2")
    ann = desk.agent_state("ann")
    assert ann.pending == ["chat-1", "chat-2"]
    out = desk.at(3).send(ConversationEnded, conversation_id="chat-1")
    assert [(j.leg, j.agent_id) for j in of_type(out, LegJoined)] == [("mail-2", "ann")]
    assert ann.pending == [] and ann.routable
    assert ann.units[CHAT] == 66 and ann.counts[EMAIL] == 1
