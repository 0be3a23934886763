"""Customers: patience, abandons and channel switches, as the scenario says."""

from __future__ import annotations

import pytest

from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.simulation import ScenarioError, parse_scenario, simulate
from tests.support.simulation import of_type, one_queue, play


def test_fixed_handling_and_patience_are_played_exactly() -> None:
    data = one_queue(
        per_hour=120.0, by_customer=0.0,
        handle={"dist": "fixed", "mean_s": 100}, patience={"dist": "fixed", "mean_s": 30},
    )  # fmt: skip
    events = play(data)
    arrived = {a.conversation_id: a.ts for a in of_type(events, ev.ConversationArrived)}
    assigned = {a.conversation_id: a.ts for a in of_type(events, ev.ConversationAssigned)}
    ended = {e.conversation_id: e.ts for e in of_type(events, ev.ConversationEnded)}
    abandoned = {e.conversation_id: e.ts for e in of_type(events, ev.CustomerAbandoned)}
    assert assigned and abandoned  # 3 agents, 120 calls an hour of 100 s: some wait too long
    assert all(ended[c] - assigned[c] == 100_000 for c in assigned)
    assert all(abandoned[c] - arrived[c] == 30_000 for c in abandoned)
    assert all(assigned[c] - arrived[c] < 30_000 for c in assigned)
    assert set(assigned) | set(abandoned) == set(arrived)


def test_a_switch_comes_in_on_its_own_queue_and_priority() -> None:
    data = one_queue(
        channel="webchat", known=1.0, per_hour=120.0,
        switch={"p": 1.0, "to": "voice", "queue": "calls", "priority": 2},
    )  # fmt: skip
    data["policy"]["queues"]["calls"] = {"offer_mode": "auto"}
    events = play(data)
    switched = [a for a in of_type(events, ev.ConversationArrived) if a.channel == "voice"]
    assert switched and {(a.queue, a.priority) for a in switched} == {("calls", 2)}
    requeued = [q for q in of_type(events, ev.ConversationQueued) if q.reason == "channel_switch"]
    assert requeued and {q.queue for q in requeued} == {"calls"}
    scenario = parse_scenario(one_queue(switch={"p": 0.5, "to": "sms", "queue": "nowhere"}))
    with pytest.raises(ScenarioError, match="nowhere"):
        simulate(scenario, MemoryLog())
