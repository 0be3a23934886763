"""Customers with simultaneous legs: the email with the document during the call, a call
while chatting. The simulator makes them at the scenario's rate, ends each leg on its
own, and never sends an input the engine has to reject."""

from __future__ import annotations

from typing import Any

import pytest

from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.simulation import (
    ScenarioError,
    parse_scenario,
    simulate,
    simultaneous_legs,
)
from tests.support.simulation import events_of, of_type, one_queue, play


def _calls_with_email(p: float, seed: int = 5) -> dict[str, Any]:
    """400 known callers in two hours, 25 agents; a share ``p`` emails during the call."""
    data = one_queue(
        known=1.0, per_hour=200.0,
        switch={"p": p, "to": "email", "during": "service",
                "after": {"dist": "uniform", "min_s": 20, "max_s": 120}},
    )  # fmt: skip
    data["agents"] = [{"group": "a", "count": 25}]
    data["seed"] = seed
    return data


def test_customers_email_during_the_call_at_the_scenario_rate() -> None:
    p = 0.25
    events = play(_calls_with_email(p))
    assert of_type(events, ev.EventRejected) == []
    answered = {a.conversation_id for a in of_type(events, ev.ConversationAssigned)}
    both = {m.conversation_id: m for m in simultaneous_legs(events)}
    assert len(answered) > 300
    # every answered caller rolled the dice once: a binomial share (sd ~ 0.023 here)
    assert abs(len(both) / len(answered) - p) < 0.07
    assert {m.channels for m in both.values()} == {("voice", "email")}
    assert all(m.customer_id is not None for m in both.values())
    # the call hangs up (by the customer) while the email goes on; the email's end then
    # ends the conversation, by its agent
    ends: dict[str, list[ev.ConversationEnded]] = {}
    for e in of_type(events, ev.ConversationEnded):
        ends.setdefault(e.conversation_id, []).append(e)
    for cid in both:
        hang_up, last = ends[cid]
        assert (hang_up.leg, hang_up.by) == (cid, "customer")
        assert last.leg is None and last.ts > hang_up.ts


def test_a_leg_the_agent_has_no_room_for_waits_and_every_conversation_ends() -> None:
    """Chatters who call: an agent busy with two chats has no room for the call leg."""
    data = one_queue(
        channel="webchat", known=1.0, per_hour=90.0,
        switch={"p": 0.5, "to": "voice", "during": "service"},
    )  # fmt: skip
    data["agents"] = [{"group": "a", "count": 4}]
    data["policy"]["queues"]["q"]["sticky_wait_s"] = 30
    log = MemoryLog()
    run = simulate(parse_scenario(data), log)
    events = events_of(log)
    assert of_type(events, ev.EventRejected) == [] and run.rejected == 0
    assert run.legs_waited > 0 and run.legs_joined > 0 and run.legs_ended > 0
    waited = [q for q in of_type(events, ev.ConversationQueued) if q.leg is not None]
    assert all(q.leg.endswith("-voice") for q in waited if q.leg)
    # after sticky_wait_s another agent takes the conversation with all its live legs
    owner: dict[str, str] = {}
    moved = 0
    for a in of_type(events, ev.ConversationAssigned):
        moved += len(a.legs) > 1 and owner.get(a.conversation_id, a.agent_id) != a.agent_id
        owner[a.conversation_id] = a.agent_id
    assert moved > 0
    assert run.open_at_end == 0
    arrived = {a.conversation_id for a in of_type(events, ev.ConversationArrived)}
    rejoined = {r.new_conversation_id for r in of_type(events, ev.ConversationRejoined)}
    closed = {e.conversation_id for e in of_type(events, ev.ConversationEnded) if e.leg is None}
    closed |= {a.conversation_id for a in of_type(events, ev.CustomerAbandoned)}
    assert closed == arrived - rejoined


def test_the_same_seed_gives_the_same_legs() -> None:
    runs = [play(_calls_with_email(0.3, seed)) for seed in (2, 2, 3)]
    legs = [list(simultaneous_legs(events)) for events in runs]
    assert runs[0] == runs[1] and legs[0] == legs[1] and legs[0]
    assert legs[0] != legs[2]


@pytest.mark.parametrize(
    ("switch", "message"),
    [
        ({"p": 1.5, "to": "email"}, r"switch\[0\]\.p"),
        ({"p": 0.1, "to": "voice"}, r"switch\[0\]\.to: another channel"),
        ([{"p": 0.6, "to": "email"}, {"p": 0.5, "to": "webchat"}], "add up to more than 1"),
        ({"p": 0.1, "to": "email", "during": "later"}, "during"),
        ({"p": 0.1, "to": "email", "after": {"mean_s": 0}}, r"switch\[0\]\.after\.mean_s"),
    ],
)
def test_a_bad_second_leg_is_an_error_naming_the_key(switch: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(one_queue(switch=switch))


def test_a_list_of_second_legs_shares_one_roll() -> None:
    data = one_queue(
        known=1.0, per_hour=200.0,
        switch=[{"p": 0.2, "to": "email", "during": "service"},
                {"p": 0.2, "to": "sms", "during": "service"}],
    )  # fmt: skip
    data["agents"] = [{"group": "a", "count": 25}]
    events = play(data)
    assert of_type(events, ev.EventRejected) == []
    legs = [
        r for r in of_type(events, ev.ConversationRejoined)
        if r.new_conversation_id == f"{r.conversation_id}-{r.channel}"
    ]  # fmt: skip
    assert len({r.conversation_id for r in legs}) == len(legs)  # one second leg at most
    channels = [r.channel for r in legs]
    assert channels.count("email") > 40 and channels.count("sms") > 40
