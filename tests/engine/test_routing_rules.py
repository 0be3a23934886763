"""One routing rule per test (DESIGN.md §4-§6, §9), each on a small scripted desk."""

from __future__ import annotations

import msgspec
import pytest

from omniroute.engine.events import (
    AgentNotResponding,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
    Contact,
    ContactsLinked,
    ConversationAssigned,
    ConversationEnded,
    ConversationEscalated,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    EventRejected,
    HandoffRequested,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    SlaBreached,
    Tick,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
)
from tests.support.desk import Desk, kinds, of_type

AUTO = """
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
"""

OFFER = """
[queues.default]
offer_mode = "offer"
offer_timeout_s = 10
wrap_up_s = 30
"""


def offered_to(decisions: list[object]) -> list[str]:
    return [
        d.agent_id for d in decisions if isinstance(d, ConversationOffered | ConversationAssigned)
    ]  # type: ignore[union-attr]


# --- eligibility -------------------------------------------------------------------------


def test_offline_agents_are_never_offered_work() -> None:
    desk = Desk(AUTO)
    desk.agent("ann", available=False)
    out = desk.arrive("c1")
    assert kinds(out) == ["conversation.queued"]
    assert desk.conv("c1").stage == "queued"


def test_away_agent_gets_no_offer_and_a_pending_offer_is_withdrawn() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob", available=False)
    assert offered_to(desk.arrive("c1")) == ["ann"]
    out = desk.send(AgentStatusChanged, agent_id="ann", status="away")
    assert of_type(out, OfferExpired)[0].reason == "agent_unavailable"
    assert desk.conv("c1").stage == "queued"
    assert desk.agent_state("ann").holding == []


def test_agent_needs_every_required_skill_at_the_minimum_level() -> None:
    desk = Desk(AUTO)
    desk.agent("junior", {"billing": 1, "sales": 5})
    desk.agent("senior", {"billing": 4})
    assert offered_to(desk.arrive("c1", skills={"billing": 3})) == ["senior"]
    assert offered_to(desk.arrive("c2", skills={"billing": 1, "sales": 1})) == ["junior"]
    assert desk.arrive("c3", skills={"legal": 1})[-1].reason == "arrived"  # type: ignore[union-attr]
    assert desk.conv("c3").stage == "queued"


def test_language_is_required_when_the_conversation_has_one() -> None:
    desk = Desk(AUTO)
    desk.agent("en", languages=["en"])
    desk.agent("fr", languages=["fr"])
    assert offered_to(desk.arrive("c1", language="fr")) == ["fr"]


def test_one_tenant_s_work_never_reaches_another_tenant_s_agents() -> None:
    desk = Desk(AUTO, tenant="globex")
    desk.agent("ann")
    other = Desk(AUTO, tenant="acme")
    other.engine = desk.engine
    out = other.arrive("c1")
    assert kinds(out) == ["conversation.queued"]
    assert other.conv("c1").stage == "queued"


# --- capacity ------------------------------------------------------------------------------


def test_voice_is_exclusive_one_call_at_a_time() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    assert offered_to(desk.arrive("c1", "voice")) == ["ann"]
    assert offered_to(desk.arrive("c2", "voice")) == []
    assert desk.conv("c2").stage == "queued"


def test_chat_concurrency_is_capped_by_the_class_max() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    for i in range(3):
        assert offered_to(desk.arrive(f"c{i}", "webchat")) == ["ann"]
    assert offered_to(desk.arrive("c3", "webchat")) == []
    assert desk.agent_state("ann").counts[2] == 3


def test_unit_budget_mixes_media_classes() -> None:
    # chat 33 + chat 33 + messaging 20 = 86 <= 100; another messaging (20) would be 106
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    desk.arrive("c2", "webchat")
    assert offered_to(desk.arrive("m1", "whatsapp")) == ["ann"]
    assert offered_to(desk.arrive("m2", "sms")) == []


def test_capacity_is_reserved_at_offer_time() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    assert offered_to(desk.arrive("c1", "voice")) == ["ann"]
    assert desk.agent_state("ann").units[0] == 100
    assert offered_to(desk.arrive("c2", "voice")) == []


def test_email_is_interruptible_by_a_call() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("e1", "email")
    assert offered_to(desk.arrive("v1", "voice")) == ["ann"]


def test_no_new_email_is_offered_while_it_would_wait_behind_a_call() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("v1", "voice")
    assert offered_to(desk.arrive("e1", "email")) == []


def test_agents_with_room_follow_the_routing_rule_interruption_included() -> None:
    desk = Desk(AUTO)
    assert desk.engine.agents_with_room("acme")["voice"] == 0
    desk.agent("ann")
    desk.agent("bob")
    desk.agent("cid", available=False)
    room = desk.engine.agents_with_room("acme")
    assert room["voice"] == room["email"] == 2
    desk.arrive("e1", "email")  # to ann: an email leaves room for a call, by interruption
    desk.arrive("v1", "voice")  # to bob
    room = desk.engine.agents_with_room("acme")
    assert (room["voice"], room["email"]) == (1, 1)


def test_chat_is_not_interruptible_by_a_call() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    assert offered_to(desk.arrive("v1", "voice")) == []


def test_inactive_async_conversation_releases_capacity() -> None:
    # messaging costs 20 (max 5); after 300 s of customer silence it costs 5
    desk = Desk(AUTO)
    desk.agent("ann")
    for i in range(2):
        desk.arrive(f"c{i}", "webchat")  # 66 units
    desk.arrive("m1", "whatsapp")  # 86
    assert offered_to(desk.arrive("m2", "whatsapp")) == []
    out = desk.tick(301)
    assert offered_to(out) == ["ann"]  # m1 went inactive: 71 + 20 = 91
    assert desk.conv("m1").inactive


def test_reactivated_conversation_waits_for_room_and_blocks_new_work() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    desk.arrive("c2", "webchat")
    desk.arrive("m1", "whatsapp")
    desk.arrive("m2", "whatsapp")  # queued
    desk.tick(301)  # m1 inactive (5), m2 assigned (20): 33+33+5+20 = 91
    desk.at(302).send(MessageReceived, conversation_id="m1")  # needs +15 -> 106: must wait
    ann = desk.agent_state("ann")
    assert ann.pending == ["m1"]
    assert sum(ann.units) <= 100
    assert offered_to(desk.arrive("c3", "sms")) == []  # blocked while m1 waits for room
    desk.at(303).send(ConversationEnded, conversation_id="c1")
    assert ann.pending == []
    assert not desk.conv("m1").inactive


def test_bots_take_many_conversations_at_once() -> None:
    desk = Desk(AUTO)
    desk.agent("bot", kind="bot")
    for i in range(50):
        assert offered_to(desk.arrive(f"c{i}", "webchat")) == ["bot"]


# --- scoring and tie-breaks --------------------------------------------------------------------


def test_longest_idle_agent_wins() -> None:
    desk = Desk('preset = "longest_idle"\n' + AUTO)
    desk.at(0).agent("ann")
    desk.at(5).agent("bob")
    assert offered_to(desk.at(10).arrive("c1", "voice")) == ["ann"]
    assert offered_to(desk.at(11).arrive("c2", "voice")) == ["bob"]


def test_ties_break_on_registration_order() -> None:
    desk = Desk('preset = "longest_idle"\n' + AUTO)
    desk.agent("zed")
    desk.agent("amy")
    assert offered_to(desk.arrive("c1")) == ["zed"]


def test_best_skill_prefers_the_most_proficient_agent() -> None:
    desk = Desk('preset = "best_skill"\n' + AUTO)
    desk.agent("ann", {"tech": 2})
    desk.agent("bob", {"tech": 5})
    assert offered_to(desk.arrive("c1", skills={"tech": 1})) == ["bob"]


def test_least_loaded_prefers_the_agent_with_most_spare_capacity() -> None:
    desk = Desk('preset = "least_loaded"\n' + AUTO)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1", "webchat")  # ann (tie -> registration order)
    assert offered_to(desk.arrive("c2", "webchat")) == ["bob"]
    assert offered_to(desk.arrive("c3", "webchat")) == ["ann"]


def test_round_robin_rotates_through_agents() -> None:
    desk = Desk('preset = "round_robin"\n' + AUTO)
    for name in ("ann", "bob", "cat"):
        desk.agent(name)
    got = [offered_to(desk.arrive(f"c{i}", "email"))[0] for i in range(6)]
    assert got == ["ann", "bob", "cat", "ann", "bob", "cat"]


def test_freed_agent_takes_the_highest_priority_conversation_first() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c0", "voice")
    desk.at(1).arrive("low", "voice", priority=0)
    desk.at(2).arrive("high", "voice", priority=5)
    out = desk.at(3).send(ConversationEnded, conversation_id="c0")
    assert of_type(out, ConversationAssigned)[0].conversation_id == "high"


def test_priority_aging_stops_starvation() -> None:
    # aging_s = 60: after 10 minutes a priority-0 conversation outranks a fresh priority-5 one
    desk = Desk(AUTO.replace("wrap_up_s = 0", "wrap_up_s = 0\naging_s = 60"))
    desk.agent("ann")
    desk.arrive("c0", "voice")
    desk.at(1).arrive("old", "voice", priority=0)
    desk.at(600).arrive("new", "voice", priority=5)
    out = desk.at(601).send(ConversationEnded, conversation_id="c0")
    assert of_type(out, ConversationAssigned)[0].conversation_id == "old"


def test_equal_urgency_goes_to_the_earlier_arrival() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c0", "voice")
    desk.at(1).arrive("first", "voice")
    desk.at(1).arrive("second", "voice")
    out = desk.at(2).send(ConversationEnded, conversation_id="c0")
    assert of_type(out, ConversationAssigned)[0].conversation_id == "first"


def test_queue_drains_when_capacity_frees() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c0", "voice")
    for i in range(3):
        desk.arrive(f"w{i}", "voice")
    for i in range(3):
        prev = "c0" if i == 0 else f"w{i - 1}"
        out = desk.at(10 + i).send(ConversationEnded, conversation_id=prev)
        assert [a.conversation_id for a in of_type(out, ConversationAssigned)] == [f"w{i}"]


def test_agent_becoming_available_drains_the_queue() -> None:
    desk = Desk(AUTO)
    desk.agent("ann", available=False)
    for i in range(3):
        desk.arrive(f"c{i}", "webchat")
    out = desk.at(5).send(AgentStatusChanged, agent_id="ann", status="available")
    assert len(of_type(out, ConversationAssigned)) == 3


# --- offers --------------------------------------------------------------------------------


def test_offer_accepted_assigns_the_conversation() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("c1")
    out = desk.at(3).send(OfferAccepted, conversation_id="c1", agent_id="ann")
    assert of_type(out, ConversationAssigned)[0].wait_ms == 3000
    assert desk.conv("c1").stage == "assigned"


def test_declined_offer_goes_to_another_agent() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1")
    out = desk.at(1).send(OfferDeclined, conversation_id="c1", agent_id="ann")
    assert offered_to(out) == ["bob"]
    assert "ann" in desk.conv("c1").excluded
    assert desk.agent_state("ann").holding == []


def test_offer_timeout_marks_agent_not_responding_and_reroutes() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1")
    out = desk.tick(10)
    assert kinds(out)[:2] == ["offer.expired", "agent.not_responding"]
    assert offered_to(out) == ["bob"]
    assert not desk.agent_state("ann").responsive
    assert offered_to(desk.at(11).arrive("c2")) == []  # ann gets nothing while not responding
    out = desk.at(12).send(AgentStatusChanged, agent_id="ann", status="available")
    assert offered_to(out) == ["ann"]


def test_accepting_someone_else_s_offer_is_rejected() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1")
    before = desk.engine.snapshot()
    out = desk.send(OfferAccepted, conversation_id="c1", agent_id="bob")
    assert kinds(out) == ["event.rejected"]
    assert "not offered to 'bob'" in out[0].reason  # type: ignore[union-attr]
    assert desk.engine.snapshot() == before


# --- escalation, SLA ---------------------------------------------------------------------------


def test_escalation_ring_lowers_the_required_level() -> None:
    desk = Desk(AUTO + "rings = [{ after_s = 30, level_drop = 2 }]\n")
    desk.agent("junior", {"tech": 2})
    desk.arrive("c1", "email", skills={"tech": 4})
    assert desk.conv("c1").stage == "queued"
    out = desk.tick(30)
    assert kinds(out) == ["conversation.escalated", "conversation.assigned"]
    assert of_type(out, ConversationEscalated)[0].ring == 1


def test_escalation_ring_can_drop_optional_skills_then_widen() -> None:
    policy = (
        AUTO
        + "skills = { support = 1 }\nrings = [{ after_s = 10, drop_optional = true },"
        + " { after_s = 20, widen = true }]\n"
    )
    desk = Desk(policy)
    desk.agent("generalist", {"support": 1})
    desk.agent("linguist", {"support": 1, "german": 1})
    desk.arrive("c1", "email", skills={"tech": 3}, optional_skills={"german": 1})
    assert desk.conv("c1").stage == "queued"
    out = desk.tick(10)
    assert kinds(out) == ["conversation.escalated"]  # still needs tech 3
    out = desk.tick(20)
    assert offered_to(out) == ["generalist"]


def test_sla_breach_is_emitted_once_just_past_the_deadline() -> None:
    desk = Desk(AUTO)
    desk.arrive("c1", "voice")  # voice target 20 s: a wait of exactly 20 s is in time
    assert of_type(desk.tick(20), SlaBreached) == []
    out = desk.tick(25)
    breach = of_type(out, SlaBreached)
    assert len(breach) == 1 and breach[0].ts == 20_001 and breach[0].waited_ms == 20_001
    assert of_type(desk.tick(60), SlaBreached) == []


def test_sla_target_is_per_channel() -> None:
    desk = Desk(AUTO)
    desk.arrive("e1", "email")
    assert of_type(desk.tick(3600), SlaBreached) == []
    assert of_type(desk.tick(86_400), SlaBreached) == []  # 24 h exactly: in time
    assert len(of_type(desk.tick(86_401), SlaBreached)) == 1


def test_no_sla_breach_when_answered_in_time() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "voice")
    assert of_type(desk.tick(100), SlaBreached) == []


# --- continuity ------------------------------------------------------------------------------


def test_new_contact_of_a_customer_with_an_open_conversation_rejoins_it() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.send(
        ContactsLinked, customer_id="cust-1",
        contacts=[Contact("messenger", "m-1"), Contact("whatsapp", "+331")],
    )  # fmt: skip
    desk.arrive("c1", "messenger", address="m-1")
    out = desk.at(60).arrive("c2", "whatsapp", address="+331")
    rejoin = of_type(out, ConversationRejoined)[0]
    assert (rejoin.conversation_id, rejoin.new_conversation_id, rejoin.agent_id) == (
        "c1", "c2", "ann",
    )  # fmt: skip
    conv = desk.conv("c2")
    assert conv.conversation_id == "c1" and conv.owner == "ann" and conv.channel == "whatsapp"
    assert sum(c for c in desk.agent_state("ann").counts) == 1


def test_channel_switch_to_a_class_that_does_not_fit_waits_for_the_same_agent() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1", "webchat", customer_id="cust")
    desk.arrive("c2", "webchat")  # bob
    desk.arrive("c3", "webchat")  # ann: two chats now, a call would not fit
    out = desk.at(5).arrive("v1", "voice", customer_id="cust")
    assert kinds(out) == ["conversation.rejoined"]
    conv = desk.conv("c1")
    assert conv.media_class == "voice" and conv.owner == "ann"
    assert desk.agent_state("ann").pending == ["c1"]


BACKOFFICE = """
[profiles.default]
budget = 100
classes.voice = { cost = 100, max = 1 }
classes.email = { cost = 10, max = 10, interruptible_by = ["voice"] }
[profiles.backoffice]
budget = 100
classes.email = { cost = 10, max = 10 }
[profiles.bot]
budget = 1000
[queues.backoffice]
skills = { backoffice = 1 }
offer_mode = "auto"
[queues.sales]
skills = { sales = 2 }
offer_mode = "auto"
priority = 1
rings = [{ after_s = 30, level_drop = 1 }]
"""


def test_a_call_about_an_open_email_waits_for_agents_who_take_calls() -> None:
    # the email's agent works emails only: the call waits in the sales queue, not for them,
    # and whoever takes it takes the email leg too
    desk = Desk(BACKOFFICE)
    desk.agent("bo", {"backoffice": 2}, capacity_profile="backoffice")
    desk.agent("ann", {"sales": 3}, available=False)
    desk.arrive("e1", "email", customer_id="cust", queue="backoffice", skills={"backoffice": 2})
    assert desk.conv("e1").owner == "bo"
    out = desk.at(60).arrive("v1", "voice", customer_id="cust", queue="sales")
    assert kinds(out) == ["conversation.rejoined", "conversation.queued"]
    assert of_type(out, ConversationQueued)[0].queue == "sales"
    conv = desk.conv("e1")
    assert (conv.queue, conv.skills, conv.pinned, conv.priority) == ("sales", {}, None, 1)
    assert desk.agent_state("bo").holding == ["e1"]  # until someone takes the call
    out = desk.at(61).send(AgentStatusChanged, agent_id="ann", status="available")
    assert offered_to(out) == ["ann"]
    assert desk.agent_state("bo").holding == [] and desk.conv("e1").owner == "ann"


def test_a_switch_into_another_queue_climbs_that_queue_s_rings() -> None:
    desk = Desk(BACKOFFICE)
    desk.agent("junior", {"sales": 1})
    desk.arrive("c1", "voice", customer_id="cust", queue="sales", skills={"x": 1})
    desk.at(5).send(CallbackRequested, conversation_id="c1", not_before=3_600_000)
    desk.at(10).arrive("e1", "email", customer_id="cust", queue="backoffice")
    desk.at(20).arrive("v1", "voice", customer_id="cust", queue="sales")  # waits: sales 2
    assert desk.conv("c1").skills == {}
    out = desk.tick(51)  # 30 s after it was queued in sales again: level 1 will do
    assert kinds(out)[-2:] == ["conversation.escalated", "conversation.assigned"]


def test_a_switch_never_lowers_the_conversation_s_priority() -> None:
    desk = Desk(BACKOFFICE)
    desk.arrive("c1", "voice", customer_id="cust", queue="sales", priority=3)
    desk.at(1).arrive("e1", "email", customer_id="cust", queue="backoffice")
    assert desk.conv("c1").priority == 4


def test_returning_customer_prefers_their_last_agent() -> None:
    # longest_idle alone would pick bob (equal idle, registered first);
    # the sticky weight picks ann, who served this customer
    desk = Desk('preset = "longest_idle"\n' + AUTO + "sticky_wait_s = 0\n")
    desk.agent("bob")
    desk.agent("ann")
    desk.arrive("x0", "voice")  # bob (registered first)
    desk.at(1).arrive("c1", "webchat", customer_id="cust")  # ann: bob is on a call
    desk.at(10).send(ConversationEnded, conversation_id="c1")
    desk.at(10).send(ConversationEnded, conversation_id="x0")
    out = desk.at(20).arrive("c2", "webchat", customer_id="cust")
    assert offered_to(out) == ["ann"]
    assert desk.conv("c2").preferred == "ann"


def test_sticky_wait_holds_the_conversation_for_the_last_agent_then_opens_up() -> None:
    desk = Desk(AUTO + "sticky_wait_s = 15\n")
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1", "voice", customer_id="cust")  # ann
    desk.at(10).send(ConversationEnded, conversation_id="c1")
    desk.at(11).arrive("x1", "voice")  # bob
    desk.at(12).arrive("x2", "voice")  # ann busy
    desk.at(13).send(ConversationEnded, conversation_id="x1")  # bob free
    out = desk.at(14).arrive("c2", "voice", customer_id="cust")
    assert offered_to(out) == []  # waits for ann
    out = desk.tick(29)
    assert offered_to(out) == ["bob"]


# --- bots, handoff ---------------------------------------------------------------------------


BOT_FIRST = """
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
bot_first = true
bot_wait_s = 10
handoff_priority_boost = 3
"""


def test_bot_first_queue_goes_to_a_bot_before_humans() -> None:
    desk = Desk(BOT_FIRST)
    desk.agent("ann")
    desk.agent("faqbot", kind="bot")
    assert offered_to(desk.arrive("c1", "webchat")) == ["faqbot"]


def test_bot_first_falls_back_to_humans_after_the_bot_window() -> None:
    desk = Desk(BOT_FIRST)
    desk.agent("ann")
    assert offered_to(desk.arrive("c1", "webchat")) == []
    assert offered_to(desk.tick(10)) == ["ann"]


def test_handoff_requeues_to_humans_keeping_first_contact_and_boosting_priority() -> None:
    desk = Desk(BOT_FIRST)
    desk.agent("faqbot", kind="bot")
    desk.arrive("c1", "webchat")
    out = desk.at(40).send(HandoffRequested, conversation_id="c1", agent_id="faqbot")
    conv = desk.conv("c1")
    assert conv.kinds == "human" and conv.priority == 3 and conv.first_contact_ts == 0
    assert of_type(out, SlaBreached)[0].waited_ms == 40_000  # webchat target 30 s
    desk.agent("ann")
    assigned = of_type(desk.log, ConversationAssigned)[-1]
    assert assigned.agent_id == "ann" and assigned.wait_ms == 40_000
    assert desk.agent_state("faqbot").holding == []


def test_a_human_cannot_request_a_bot_handoff() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1")
    out = desk.send(HandoffRequested, conversation_id="c1", agent_id="ann")
    assert kinds(out) == ["event.rejected"]


# --- transfers -------------------------------------------------------------------------------


def test_cold_transfer_to_a_queue_releases_the_agent_at_once() -> None:
    desk = Desk(AUTO + "[queues.billing]\noffer_mode = 'auto'\nskills = { billing = 1 }\n")
    desk.agent("ann")
    desk.agent("bill", {"billing": 2}, available=False)
    desk.arrive("c1", "voice")
    out = desk.at(30).send(
        TransferRequested, conversation_id="c1", agent_id="ann", to_queue="billing"
    )
    assert of_type(out, ConversationQueued)[0].reason == "transfer"
    assert desk.agent_state("ann").holding == []
    conv = desk.conv("c1")
    assert conv.queue == "billing" and conv.first_contact_ts == 0 and conv.transfers == 1
    out = desk.at(31).send(AgentStatusChanged, agent_id="bill", status="available")
    assert of_type(out, ConversationAssigned)[0].wait_ms == 31_000


def test_warm_transfer_keeps_the_first_agent_until_the_second_is_assigned() -> None:
    desk = Desk(OFFER)
    desk.agent("ann", {"tech": 1})
    desk.agent("bob", {"tech": 3}, available=False)
    desk.arrive("c1", "voice")
    desk.at(1).send(OfferAccepted, conversation_id="c1", agent_id="ann")
    desk.at(5).send(
        TransferRequested, conversation_id="c1", agent_id="ann", skills={"tech": 3}, mode="warm"
    )
    assert desk.conv("c1").owner == "ann" and desk.conv("c1").in_queue
    desk.at(6).send(AgentStatusChanged, agent_id="bob", status="available")
    assert desk.conv("c1").offer_agent == "bob" and desk.conv("c1").owner == "ann"
    desk.at(7).send(OfferAccepted, conversation_id="c1", agent_id="bob")
    assert desk.conv("c1").owner == "bob"
    assert desk.agent_state("ann").holding == []


def test_transfer_to_an_agent_pins_the_conversation_to_them() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.agent("bob")
    desk.agent("cat")
    desk.arrive("c1", "webchat")  # ann
    out = desk.at(2).send(TransferRequested, conversation_id="c1", agent_id="ann", to_agent="cat")
    assert offered_to(out) == ["cat"]


def test_transfer_by_an_agent_who_does_not_hold_it_is_rejected() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1")
    out = desk.send(TransferRequested, conversation_id="c1", agent_id="bob", to_queue="default")
    assert kinds(out) == ["event.rejected"]


# --- endings, wrap-up, abandonment, callbacks -----------------------------------------------------


def test_wrap_up_holds_capacity_until_completed() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("c1")
    desk.send(OfferAccepted, conversation_id="c1", agent_id="ann")
    desk.at(60).send(ConversationEnded, conversation_id="c1")
    assert desk.conv("c1").stage == "wrap_up"
    assert offered_to(desk.at(61).arrive("c2")) == []
    out = desk.at(70).send(WrapUpCompleted, conversation_id="c1", agent_id="ann")
    assert offered_to(out) == ["ann"]
    assert desk.conv("c1") is None


def test_wrap_up_times_out() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("c1")
    desk.send(OfferAccepted, conversation_id="c1", agent_id="ann")
    desk.at(60).send(ConversationEnded, conversation_id="c1")
    out = desk.tick(90)
    assert kinds(out) == ["wrapup.expired"]
    assert of_type(out, WrapUpExpired)[0].ts == 90_000
    assert desk.agent_state("ann").holding == []


def test_customer_abandons_from_the_queue() -> None:
    desk = Desk(AUTO)
    desk.arrive("c1")
    desk.at(5).send(CustomerAbandoned, conversation_id="c1")
    assert desk.conv("c1") is None


def test_customer_abandons_during_an_offer_and_the_capacity_comes_back() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("c1")
    out = desk.at(2).send(CustomerAbandoned, conversation_id="c1")
    assert of_type(out, OfferExpired)[0].reason == "abandoned"
    assert desk.agent_state("ann").holding == [] and sum(desk.agent_state("ann").units) == 0


def test_callback_keeps_the_original_wait_clock() -> None:
    desk = Desk(AUTO)
    desk.arrive("c1", "voice")
    desk.at(50).send(CallbackRequested, conversation_id="c1", not_before=600_000)
    assert desk.conv("c1").stage == "scheduled"
    desk.agent("ann")
    assert desk.conv("c1").stage == "scheduled"
    out = desk.tick(600)
    assigned = of_type(out, ConversationAssigned)[0]
    assert assigned.wait_ms == 600_000
    assert desk.conv("c1").media_class == "task"


def test_agent_going_offline_hands_back_what_they_hold() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    desk.agent("bob", available=False)
    out = desk.at(5).send(AgentStatusChanged, agent_id="ann", status="offline")
    assert of_type(out, ConversationQueued)[0].reason == "agent_offline"
    out = desk.at(6).send(AgentStatusChanged, agent_id="bob", status="available")
    assert offered_to(out) == ["bob"]


def test_removed_agent_s_conversations_are_requeued_not_lost() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    desk.at(5).send(AgentRemoved, agent_id="ann")
    assert desk.conv("c1").stage == "queued"
    assert "ann" not in desk.engine.state.tenants["acme"].agents


# --- invalid input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "fields", "reason"),
    [
        (OfferAccepted, {"conversation_id": "nope", "agent_id": "ann"}, "unknown or closed"),
        (AgentStatusChanged, {"agent_id": "ghost", "status": "available"}, "unknown agent"),
        (AgentRegistered, {"agent_id": "ann"}, "already registered"),
        (AgentRegistered, {"agent_id": "x", "skills": {"a": 9}}, "level must be"),
        (AgentUpdated, {"agent_id": "ann", "capacity_profile": "nope"}, "unknown capacity"),
        (ConversationEnded, {"conversation_id": "q1"}, "CustomerAbandoned"),
        (WrapUpCompleted, {"conversation_id": "q1", "agent_id": "ann"}, "not in wrap-up"),
        (CallbackRequested, {"conversation_id": "ghost"}, "unknown or closed"),
        (TransferRequested, {"conversation_id": "q1", "agent_id": "ann"}, "not assigned"),
    ],
)
def test_invalid_event_is_rejected_with_a_reason_and_changes_nothing(
    event_type: type, fields: dict[str, object], reason: str
) -> None:
    desk = Desk(AUTO)
    desk.agent("ann", available=False)
    desk.arrive("q1")
    before = desk.engine.snapshot()
    out = desk.send(event_type, **fields)
    assert len(out) == 1 and isinstance(out[0], EventRejected)
    assert reason in out[0].reason
    assert out[0].event_type == event_type.__struct_config__.tag
    assert desk.engine.snapshot() == before


def test_arrival_on_an_unknown_queue_is_rejected() -> None:
    desk = Desk(AUTO)
    out = desk.arrive("c1", queue="nope")
    assert isinstance(out[0], EventRejected) and "unknown queue" in out[0].reason


def test_duplicate_event_id_is_ignored() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    first = desk.arrive("c1", id="msg-1")
    assert offered_to(first) == ["ann"]
    assert desk.arrive("c1", id="msg-1") == []


def test_decisions_fed_back_as_input_are_rejected() -> None:
    desk = Desk(AUTO)
    out = desk.engine.apply(AgentNotResponding(tenant="acme", ts=0, agent_id="ann"))
    assert isinstance(out[0], EventRejected)


# --- time ----------------------------------------------------------------------------------------


def test_timers_fire_in_deadline_order_before_the_event() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("v1", "voice")  # offer deadline 10 s, SLA deadline 20 s
    out = desk.at(30).arrive("v2", "voice")
    stamps = [d.ts for d in out]
    assert stamps == sorted(stamps)
    assert kinds(out)[:2] == ["offer.expired", "agent.not_responding"]
    assert of_type(out, SlaBreached)[0].ts == 20_001


def test_clock_never_goes_back_on_a_late_event() -> None:
    desk = Desk(AUTO)
    desk.tick(100)
    desk.at(50).arrive("c1")
    assert desk.engine.clock == 100_000
    assert desk.conv("c1").first_contact_ts == 100_000


def test_snapshot_restores_an_identical_engine() -> None:
    from omniroute.engine import Engine

    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob")
    for i in range(5):
        desk.at(i).arrive(f"c{i}", "webchat")
    copy = Engine.restore(desk.engine.snapshot(), desk.engine.policy)
    tail = [Tick(tenant="acme", ts=15_000), Tick(tenant="acme", ts=40_000)]
    for event in tail:
        a, b = desk.engine.apply(event), copy.apply(event)
        assert msgspec.msgpack.encode(a) == msgspec.msgpack.encode(b)
    assert copy.snapshot() == desk.engine.snapshot()


def test_a_decline_by_the_pinned_agent_releases_the_pin() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob")
    desk.agent("cat")
    desk.arrive("c1")
    desk.at(1).send(OfferAccepted, conversation_id="c1", agent_id="ann")
    desk.at(2).send(TransferRequested, conversation_id="c1", agent_id="ann", to_agent="cat")
    out = desk.at(3).send(OfferDeclined, conversation_id="c1", agent_id="cat")
    assert offered_to(out) == ["bob"]


def test_bot_first_only_concerns_the_first_routing() -> None:
    desk = Desk(BOT_FIRST)
    desk.agent("faqbot", kind="bot")
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    out = desk.at(2).send(
        TransferRequested, conversation_id="c1", agent_id="faqbot", to_queue="default"
    )
    assert offered_to(out) == ["ann"]


def test_a_bot_never_shares_a_conversation_through_a_warm_transfer() -> None:
    desk = Desk(BOT_FIRST)
    desk.agent("faqbot", kind="bot")
    desk.arrive("c1", "webchat")
    out = desk.send(
        TransferRequested, conversation_id="c1", agent_id="faqbot", to_queue="default",
        mode="warm",
    )  # fmt: skip
    assert kinds(out) == ["event.rejected"]


def test_a_customer_who_calls_back_before_their_scheduled_callback_is_served_now() -> None:
    desk = Desk(AUTO)
    desk.arrive("c1", "voice", customer_id="cust")
    desk.at(10).send(CallbackRequested, conversation_id="c1", not_before=3_600_000)
    desk.agent("ann")
    out = desk.at(60).arrive("c2", "webchat", customer_id="cust")
    assert kinds(out) == [
        "sla.breached",
        "conversation.rejoined",
        "conversation.queued",
        "conversation.assigned",
    ]  # the callback wait counts against the SLA: the customer was still waiting
    assert of_type(out, ConversationAssigned)[0].wait_ms == 60_000


def test_escalation_rings_stop_once_the_conversation_is_answered() -> None:
    desk = Desk(AUTO + "rings = [{ after_s = 30, level_drop = 1 }]\n")
    desk.agent("ann", {"s": 3})
    desk.arrive("c1", "email", skills={"s": 3})
    assert of_type(desk.tick(31), ConversationEscalated) == []


def test_a_scheduled_callback_climbs_the_rings_once_it_is_due() -> None:
    desk = Desk(AUTO + "rings = [{ after_s = 30, level_drop = 1 }]\n")
    desk.agent("ann", {"s": 2})
    desk.arrive("c1", "voice", skills={"s": 3})
    desk.at(5).send(CallbackRequested, conversation_id="c1", not_before=15_000)
    out = desk.tick(45)
    assert kinds(out)[-2:] == ["conversation.escalated", "conversation.assigned"]
    assert of_type(out, ConversationAssigned)[0].ts == 45_000


def test_warm_transfer_offer_goes_on_when_the_first_agent_leaves() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob")
    desk.arrive("c1", "webchat")
    desk.at(1).send(OfferAccepted, conversation_id="c1", agent_id="ann")
    out = desk.at(2).send(
        TransferRequested, conversation_id="c1", agent_id="ann", to_queue="default", mode="warm"
    )
    assert offered_to(out) == ["bob"]
    out = desk.at(3).send(AgentStatusChanged, agent_id="ann", status="offline")
    assert offered_to(out) == [] and of_type(out, ConversationQueued) == []
    conv = desk.conv("c1")
    assert (conv.stage, conv.offer_agent, conv.owner) == ("offered", "bob", None)


def test_a_callback_from_a_bot_first_queue_is_made_by_a_human() -> None:
    desk = Desk(BOT_FIRST)
    desk.agent("ann", available=False)
    desk.arrive("c1", "voice")
    desk.at(1).send(CallbackRequested, conversation_id="c1")
    desk.agent("faqbot", kind="bot")
    assert desk.conv("c1").stage == "queued"
    out = desk.at(2).send(AgentStatusChanged, agent_id="ann", status="available")
    assert offered_to(out) == ["ann"]


def test_a_waiting_reactivation_settles_when_another_conversation_goes_quiet() -> None:
    desk = Desk(AUTO)
    desk.agent("ann")
    desk.arrive("c1", "webchat")
    desk.arrive("c2", "webchat")
    desk.arrive("m1", "whatsapp")
    desk.at(100).arrive("m2", "whatsapp")  # queued: 86 + 20 > 100
    desk.tick(300)  # m1 quiet: 71 -> m2 assigned: 91
    desk.at(301).send(MessageReceived, conversation_id="m1")  # +15 -> 106: waits
    assert desk.agent_state("ann").pending == ["m1"]
    desk.tick(600)  # m2 quiet (assigned at 300): 91 - 15 = 76, m1 back to full: 91
    assert desk.agent_state("ann").pending == []
    assert not desk.conv("m1").inactive and desk.conv("m2").inactive


def test_a_warm_transfer_survives_a_channel_switch() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.agent("bob", available=False)
    desk.arrive("c1", "messenger", customer_id="cust")
    desk.at(1).send(OfferAccepted, conversation_id="c1", agent_id="ann")
    desk.at(2).send(
        TransferRequested, conversation_id="c1", agent_id="ann", to_queue="default", mode="warm"
    )
    desk.at(3).arrive("c2", "webchat", customer_id="cust")
    conv = desk.conv("c1")
    assert conv.owner == "ann" and conv.in_queue and conv.media_class == "chat"
    out = desk.at(4).send(AgentStatusChanged, agent_id="bob", status="available")
    assert offered_to(out) == ["bob"]


CHEAP_CALLS = """
[profiles.default]
budget = 100
[profiles.default.classes.voice]
cost = 50
max = 1
[profiles.default.classes.chat]
cost = 33
max = 3
[profiles.default.classes.email]
cost = 10
max = 10
interruptible_by = ["voice"]
[profiles.bot]
budget = 1000
"""


def test_work_taken_during_a_call_still_fits_when_the_call_ends() -> None:
    desk = Desk(CHEAP_CALLS + AUTO)
    desk.agent("ann")
    for i in range(8):
        desk.arrive(f"e{i}", "email")  # 80
    assert offered_to(desk.arrive("v1", "voice")) == ["ann"]  # emails pause: 50
    assert offered_to(desk.arrive("w1", "webchat")) == []  # 113 once the call ends
