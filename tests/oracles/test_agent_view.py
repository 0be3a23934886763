"""The agents' point of view of ``tests/oracles/agent_view.py`` on hand-written logs: it
notices each breakage it is about, and a correct log gives it nothing to say."""

from __future__ import annotations

import pytest

from omniroute.engine.events import (
    AgentRegistered,
    Contact,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    ConversationRejoined,
    Decision,
    Event,
    LegJoined,
    MessageReceived,
    Tick,
    TransferRequested,
)
from omniroute.engine.policy import Policy
from tests.oracles.agent_view import AgentView, lead_class

POLICY = Policy()  # the default human profile: voice 100/1, chat 33/3, email 10/10, ...


def _arrive(cid: str, channel: str, ts: int = 0) -> ConversationArrived:
    return ConversationArrived(
        tenant="acme", ts=ts, conversation_id=cid, channel=channel,  # type: ignore[arg-type]
        contact=Contact(channel, f"{cid}-address"),  # type: ignore[arg-type]
    )  # fmt: skip


def _assigned(cid: str, legs: list[str], agent: str = "ann", ts: int = 0) -> ConversationAssigned:
    return ConversationAssigned(
        tenant="acme", ts=ts, conversation_id=cid, agent_id=agent, legs=legs
    )


def _offered(cid: str, legs: list[str], agent: str = "ann") -> ConversationOffered:
    return ConversationOffered(
        tenant="acme", ts=0, conversation_id=cid, agent_id=agent, score=0.0, why="test",
        deadline=5_000, legs=legs,
    )  # fmt: skip


def _rejoined(cid: str, leg: str, channel: str, agent: str | None = "ann") -> ConversationRejoined:
    return ConversationRejoined(
        tenant="acme", ts=0, conversation_id=cid, new_conversation_id=leg,
        channel=channel, agent_id=agent,  # type: ignore[arg-type]
    )  # fmt: skip


def _joined(cid: str, leg: str, channel: str) -> LegJoined:
    return LegJoined(
        tenant="acme", ts=0, conversation_id=cid, leg=leg, agent_id="ann",
        channel=channel,  # type: ignore[arg-type]
    )  # fmt: skip


def _view(steps: list[tuple[Event, list[Decision]]]) -> AgentView:
    view = AgentView(POLICY)
    view.fold(AgentRegistered(tenant="acme", ts=0, agent_id="ann"), [])
    for event, out in steps:
        view.fold(event, out)
    return view


# Ann on call-1; the customer emails (mail-1 joins call-1, and Ann takes the email leg).
ON_A_CALL_EMAILED: list[tuple[Event, list[Decision]]] = [
    (_arrive("call-1", "voice"), [_assigned("call-1", ["call-1"])]),
    (
        _arrive("mail-1", "email"),
        [_rejoined("call-1", "mail-1", "email"), _joined("call-1", "mail-1", "email")],
    ),
]


def test_a_call_and_its_email_cost_a_call() -> None:
    view = _view(ON_A_CALL_EMAILED)
    assert view.violations("acme", 0) == []
    assert view.holdings("acme", "ann", 0) == [("call-1", "owner", {"voice", "email"}, 100)]
    assert view.real_time_floor("acme", "ann") == 100


def test_a_second_call_offered_during_a_call_and_its_email_is_over_capacity() -> None:
    view = _view(
        [*ON_A_CALL_EMAILED, (_arrive("call-2", "voice"), [_offered("call-2", ["call-2"])])]
    )
    problems = view.violations("acme", 0)
    assert any("2 conversations with a live voice leg (max 1)" in p for p in problems), problems
    assert any("holds at least 200 units > budget 100" in p for p in problems), problems


def test_when_the_call_leg_ends_the_email_costs_an_email() -> None:
    end = ConversationEnded(tenant="acme", ts=0, conversation_id="mail-1", leg="call-1")
    view = _view([*ON_A_CALL_EMAILED, (end, [])])
    assert view.holdings("acme", "ann", 0) == [("call-1", "owner", {"email"}, 10)]
    assert view.real_time_floor("acme", "ann") == 0


def test_ending_the_last_live_leg_ends_the_conversation() -> None:
    end = ConversationEnded(tenant="acme", ts=0, conversation_id="call-1", leg="call-1")
    view = _view([ON_A_CALL_EMAILED[0], (end, [])])
    assert view.tenants["acme"].convs["call-1"].ended
    assert view.holdings("acme", "ann", 0) == []


def test_a_leg_the_agent_did_not_join_costs_them_nothing() -> None:
    chat = (_arrive("chat-1", "webchat"), [_rejoined("call-1", "chat-1", "webchat")])
    view = _view([ON_A_CALL_EMAILED[0], chat])
    assert view.holdings("acme", "ann", 0) == [("call-1", "owner", {"voice"}, 100)]


def test_a_cold_transfer_takes_every_leg_off_the_agent() -> None:
    transfer = TransferRequested(
        tenant="acme", ts=0, conversation_id="mail-1", agent_id="ann", to_queue="default"
    )
    view = _view([*ON_A_CALL_EMAILED, (transfer, [])])
    assert view.holdings("acme", "ann", 0) == []


def test_a_silent_messaging_conversation_may_cost_its_inactive_cost() -> None:
    silent_s = POLICY.profiles["default"].classes["messaging"].inactive_after_s
    assert silent_s is not None
    later = round(silent_s * 1000)
    view = _view([(_arrive("wa-1", "whatsapp"), [_assigned("wa-1", ["wa-1"])])])
    assert view.holdings("acme", "ann", later - 1)[0][3] == 20
    view.fold(Tick(tenant="acme", ts=later), [])
    view.fold(MessageReceived(tenant="acme", ts=later, conversation_id="wa-1"), [])
    assert view.holdings("acme", "ann", later)[0][3] == 5  # reactivation may have to wait


@pytest.mark.parametrize(
    ("decision", "complaint"),
    [
        (_assigned("call-1", []), "names no legs"),
        (_assigned("call-1", ["ghost"]), "not live"),
        (_offered("call-1", ["call-1", "call-1"], agent="bob"), "names a leg twice"),
        (_joined("call-1", "call-1", "voice"), "already serves it"),
        (_rejoined("call-1", "call-1", "email"), "leg id already used"),
        (_rejoined("call-1", "mail-9", "email", agent=None), "owner is 'ann'"),
    ],
)
def test_decisions_at_odds_with_the_wire_are_caught(decision: Decision, complaint: str) -> None:
    view = _view([ON_A_CALL_EMAILED[0]])
    with pytest.raises(AssertionError, match=complaint):
        view.fold(Tick(tenant="acme", ts=0), [decision])


def test_demand_order() -> None:
    assert lead_class({"email", "voice"}) == "voice"
    assert lead_class({"messaging", "task"}) == "task"
    assert lead_class({"social", "email"}) == "email"
