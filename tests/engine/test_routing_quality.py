"""Routing quality rules (DESIGN.md §6-§7): urgency by SLA deadline, idle means without
work, new work spread over agents, asynchronous conversations answered by the first reply."""

from __future__ import annotations

import pytest

from omniroute.engine.events import (
    AgentStatusChanged,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    EventRejected,
    MessageReceived,
    SlaBreached,
    WrapUpCompleted,
)
from tests.support.desk import Desk, of_type

TWO_TARGETS = """
{head}
[queues.slow]
offer_mode = "auto"
sla_s = {{ webchat = 300 }}

[queues.fast]
offer_mode = "auto"
sla_s = {{ webchat = 30 }}
"""


def given(decisions: list[object]) -> list[tuple[str, str]]:
    """(conversation, agent) of every offer and assignment, in order."""
    found = of_type(decisions, ConversationOffered) + of_type(decisions, ConversationAssigned)
    seen = [(d.conversation_id, d.agent_id) for d in decisions if d in found]
    return list(dict.fromkeys(seen))


def two_targets(head: str = "") -> Desk:
    """A slow-target chat waits from 0 s, a fast-target one from 1 s; ann frees at 5 s."""
    desk = Desk(TWO_TARGETS.format(head=head))
    desk.agent("ann", available=False)
    desk.arrive("slow-1", channel="webchat", queue="slow")
    desk.at(1).arrive("fast-1", channel="webchat", queue="fast")
    return desk


def test_the_earliest_sla_deadline_is_served_first() -> None:
    desk = two_targets()
    out = desk.at(5).send(AgentStatusChanged, agent_id="ann", status="available")
    assert given(out)[0] == ("fast-1", "ann")  # deadline 31 s, before the other's 300 s


def test_arrival_urgency_serves_the_first_contact_first() -> None:
    desk = two_targets('urgency = "arrival"')
    out = desk.at(5).send(AgentStatusChanged, agent_id="ann", status="available")
    assert given(out)[0] == ("slow-1", "ann")


def test_each_priority_level_moves_the_deadline_by_aging_s() -> None:
    desk = Desk(TWO_TARGETS.format(head=""))
    desk.agent("ann", available=False)
    desk.arrive("slow-1", channel="webchat", queue="slow", priority=1)  # 300 - 300 s
    desk.at(1).arrive("fast-1", channel="webchat", queue="fast")  # 31 s
    out = desk.at(5).send(AgentStatusChanged, agent_id="ann", status="available")
    assert given(out)[0] == ("slow-1", "ann")


def test_strict_priority_outranks_any_deadline_and_extreme_priorities_are_ordered() -> None:
    policy = TWO_TARGETS.replace('offer_mode = "auto"', 'offer_mode = "auto"\naging_s = 0')
    desk = Desk(policy.format(head=""))
    desk.agent("ann", available=False)
    desk.arrive("slow-1", channel="webchat", queue="slow", priority=2**31 - 1)
    desk.arrive("fast-1", channel="webchat", queue="fast", priority=-(2**31))
    desk.arrive("fast-2", channel="webchat", queue="fast", priority=5)
    out = desk.at(5).send(AgentStatusChanged, agent_id="ann", status="available")
    assert [cid for cid, _ in given(out)] == ["slow-1", "fast-2", "fast-1"]


def test_a_call_that_joins_an_email_conversation_is_as_urgent_as_a_call() -> None:
    desk = Desk(TWO_TARGETS.format(head=""))
    desk.agent("ann")
    desk.arrive("busy", channel="voice", queue="fast")  # ann is on a call
    desk.arrive("e1", channel="email", queue="slow", customer_id="x")  # can't pause a call
    desk.at(20).arrive("x-call", channel="voice", queue="slow", customer_id="x")  # due 40 s
    desk.at(25).arrive("y-call", channel="voice", queue="slow", customer_id="y")  # due 45 s
    assert [leg.leg_id for leg in desk.conv("e1").legs] == ["e1", "x-call"]
    desk.at(30).send(ConversationEnded, conversation_id="busy", by="customer")
    out = desk.send(WrapUpCompleted, conversation_id="busy", agent_id="ann")
    assert given(out) == [("e1", "ann")]  # not after every call: its email is due in a day


# --- spreading new work ------------------------------------------------------------------

SPREAD = """
preset = "best_skill"
{head}
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
"""


def handed_back(head: str = "") -> tuple[Desk, list[object]]:
    """Carl holds three emails and goes offline while ann (expert) and bob have room."""
    desk = Desk(SPREAD.format(head=head))
    desk.agent("ann", skills={"mail": 5}, available=False)
    desk.agent("bob", skills={"mail": 1}, available=False)
    desk.agent("carl", skills={"mail": 1})
    for i in range(3):
        desk.arrive(f"e{i}", channel="email", skills={"mail": 1})
    desk.send(AgentStatusChanged, agent_id="ann", status="available")
    desk.send(AgentStatusChanged, agent_id="bob", status="available")
    out = desk.at(10).send(AgentStatusChanged, agent_id="carl", status="offline")
    return desk, out


def test_one_pass_spreads_new_work_over_the_agents_with_room() -> None:
    _, out = handed_back()
    assert given(out) == [("e0", "ann"), ("e1", "bob"), ("e2", "ann")]
    assert [d.why for d in of_type(out, ConversationAssigned)] == ["best_skill"] * 3


def test_max_per_pass_lets_the_best_agent_take_that_many_first() -> None:
    _, out = handed_back("max_per_pass = 2")
    assert given(out) == [("e0", "ann"), ("e1", "ann"), ("e2", "bob")]


def test_an_agent_alone_with_room_still_takes_all_it_fits() -> None:
    desk = Desk(SPREAD.format(head=""))
    desk.agent("ann", skills={"mail": 1}, available=False)
    for i in range(3):
        desk.arrive(f"e{i}", channel="email", skills={"mail": 1})
    out = desk.send(AgentStatusChanged, agent_id="ann", status="available")
    assert [agent for _, agent in given(out)] == ["ann"] * 3  # nothing waits while she has room


# --- asynchronous conversations are answered by the first reply --------------------------

REPLY = """
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
sla_s = { email = 60, voice = 20 }
"""


def test_an_email_assigned_at_once_but_not_replied_to_breaches_its_target() -> None:
    desk = Desk(REPLY)
    desk.agent("ann")
    assert given(desk.arrive("e1", channel="email")) == [("e1", "ann")]
    out = desk.tick(61)
    assert [b.conversation_id for b in of_type(out, SlaBreached)] == ["e1"]


def test_the_first_human_reply_answers_an_email_in_time() -> None:
    desk = Desk(REPLY)
    desk.agent("ann")
    desk.arrive("e1", channel="email")
    desk.at(59).send(MessageReceived, conversation_id="e1", direction="out", leg="e1")
    assert desk.conv("e1").replied
    assert of_type(desk.tick(120), SlaBreached) == []


def test_a_call_is_answered_by_its_assignment() -> None:
    desk = Desk(REPLY)
    desk.agent("ann")
    desk.arrive("c1", channel="voice")
    assert of_type(desk.tick(120), SlaBreached) == []


def test_a_reply_before_any_agent_holds_it_does_not_answer_it() -> None:
    desk = Desk(REPLY)
    desk.arrive("e1", channel="email")
    desk.at(5).send(MessageReceived, conversation_id="e1", direction="out")  # an auto-reply
    assert not desk.conv("e1").replied
    assert len(of_type(desk.tick(61), SlaBreached)) == 1


def test_a_message_must_name_a_live_leg_of_its_conversation() -> None:
    desk = Desk(REPLY)
    desk.agent("ann")
    desk.arrive("e1", channel="email", customer_id="cust")
    desk.at(2).arrive("c2", channel="voice", customer_id="cust")  # joins e1 as a leg
    assert [leg.leg_id for leg in desk.conv("e1").legs] == ["e1", "c2"]
    out = desk.send(MessageReceived, conversation_id="e1", leg="nope")
    assert "has no leg 'nope'" in of_type(out, EventRejected)[0].reason
    desk.at(3).send(ConversationEnded, conversation_id="e1", by="customer", leg="c2")
    out = desk.send(MessageReceived, conversation_id="e1", direction="out", leg="c2")
    assert "has already ended" in of_type(out, EventRejected)[0].reason
    assert of_type(desk.send(MessageReceived, conversation_id="e1", leg="e1"), EventRejected) == []


# --- idle means without work -------------------------------------------------------------

IDLE = """
preset = "{preset}"
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
"""


@pytest.mark.parametrize("preset", ["longest_idle", "least_loaded", "balanced"])
def test_a_call_goes_to_the_agent_holding_nothing_not_to_pause_an_email(preset: str) -> None:
    desk = Desk(IDLE.format(preset=preset))
    desk.agent("ann")  # idle from 0 s
    desk.at(60).arrive("e1", channel="email")  # ann, idle longest, takes the email
    desk.agent("bob")  # idle from 60 s, holding nothing
    assert desk.agent_state("ann").holding == ["e1"]
    out = desk.at(120).arrive("c1", channel="voice")
    assert given(out) == [("c1", "bob")]


def test_idle_time_counts_from_when_the_agent_last_held_no_work() -> None:
    desk = Desk(IDLE.format(preset="longest_idle"))
    desk.agent("ann")
    desk.agent("bob")
    desk.at(10).arrive("c1", channel="voice")  # ann (registered first, equally idle)
    desk.at(20).send(ConversationEnded, conversation_id="c1", by="customer")
    assert desk.agent_state("ann").idle_since == 20_000
    out = desk.at(30).arrive("c2", channel="voice")
    assert given(out) == [("c2", "bob")]  # bob idle 30 s, ann only 10 s
