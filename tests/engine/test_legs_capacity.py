"""Issue 13, defect 1: a conversation costs its agent its most demanding live leg.

Ann is on call-1 (voice 100/100). The same customer emails during the call: the email
joins call-1 as a second live leg, and Ann still holds a call's units, so a second
caller is never offered to her: she never holds two live calls. When the call leg hangs
up, the conversation goes on by email and costs an email (the second caller fits then).
Every step is checked from the agents' point of view (``tests/oracles/agent_view.py``).
"""

from __future__ import annotations

from typing import Any

from omniroute.engine import Engine
from omniroute.engine.events import (
    AgentRegistered,
    AgentStatusChanged,
    Contact,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    Decision,
    Event,
    EventRejected,
    OfferAccepted,
)
from omniroute.engine.policy import Policy, Queue
from tests.oracles.agent_view import AgentView
from tests.oracles.invariants import check_invariants

POLICY = Policy(queues={"default": Queue(offer_mode="offer", offer_timeout_s=30)})


def _arrive(cid: str, ts: int, channel: str, customer: str) -> ConversationArrived:
    return ConversationArrived(
        tenant="acme", ts=ts, conversation_id=cid, channel=channel,  # type: ignore[arg-type]
        contact=Contact(channel, f"{customer}-{channel}"),  # type: ignore[arg-type]
        customer_id=customer,
    )  # fmt: skip


def _run(events: list[Event]) -> tuple[Engine, list[Decision]]:
    """Apply the events, checking the engine's and the agents' invariants after each."""
    engine, view, decisions = Engine(POLICY), AgentView(POLICY), []
    for event in events:
        out = engine.apply(event)
        assert not [d for d in out if isinstance(d, EventRejected)], (event, out)
        view.fold(event, out)
        decisions += out
        check_invariants(engine)
        assert not view.violations("acme", event.ts), view.violations("acme", event.ts)
    return engine, decisions


def _to_ann(decisions: list[Decision], cid: str) -> list[Decision]:
    return [
        d
        for d in decisions
        if isinstance(d, ConversationOffered | ConversationAssigned)
        and d.conversation_id == cid
        and d.agent_id == "ann"
    ]


ANN_ON_A_CALL_EMAILED: list[Event] = [
    AgentRegistered(tenant="acme", ts=0, agent_id="ann"),
    AgentStatusChanged(tenant="acme", ts=0, agent_id="ann", status="available"),
    _arrive("call-1", 0, "voice", "cust"),
    OfferAccepted(tenant="acme", ts=1_000, conversation_id="call-1", agent_id="ann"),
    _arrive("mail-1", 2_000, "email", "cust"),  # joins call-1 as a second live leg
    _arrive("call-2", 3_000, "voice", "someone-else"),
]


def test_an_email_during_a_call_never_gets_ann_a_second_call() -> None:
    engine, decisions = _run(ANN_ON_A_CALL_EMAILED)
    assert not _to_ann(decisions, "call-2"), "call-2 was offered to Ann during call-1"
    ann = engine.state.tenants["acme"].agents["ann"]
    assert sum(ann.units) >= 100, f"Ann on call-1 books only {ann.units}"


def test_when_the_call_hangs_up_the_email_goes_on_and_costs_an_email() -> None:
    fields: dict[str, Any] = {"tenant": "acme", "ts": 4_000, "conversation_id": "call-1"}
    engine, decisions = _run(
        [*ANN_ON_A_CALL_EMAILED, ConversationEnded(**fields, leg="call-1", by="customer")]
    )
    tenant = engine.state.tenants["acme"]
    assert tenant.conversations["call-1"].owner == "ann", "the email leg went on without Ann"
    assert _to_ann(decisions, "call-2"), "Ann, on an email only, was not offered call-2"
