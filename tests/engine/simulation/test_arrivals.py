"""Arrivals: drawn per stream from the scenario's numbers, the same whatever the policy."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import msgspec
import pytest

from omniroute.engine import events as ev
from omniroute.engine.simulation import load_scenario, parse_scenario, scenario_policy
from tests.support.simulation import START_MS, of_type, one_queue, play


def planned_arrivals(events: list[ev.Event]) -> list[tuple[Any, ...]]:
    """Arrivals drawn from the scenario (not switches or follow-ups, made during the run)."""
    return [
        (a.conversation_id, a.ts, a.channel, a.contact, a.customer_id, a.skills)
        for a in of_type(events, ev.ConversationArrived)
        if not a.conversation_id.endswith(("-task", *(f"-{c}" for c in ev.CHANNELS)))
    ]


def test_two_policies_see_the_same_arrivals() -> None:
    scenario, path = load_scenario("small")
    base = scenario_policy(scenario, path.parent)
    logs = []
    for preset in ("longest_idle", "balanced"):
        policy = msgspec.structs.replace(base, preset=preset)
        logs.append(play(scenario, policy=policy))
    assert planned_arrivals(logs[0]) == planned_arrivals(logs[1])
    assigned = [
        [(a.conversation_id, a.agent_id) for a in of_type(events, ev.ConversationAssigned)]
        for events in logs
    ]
    assert assigned[0] != assigned[1]  # ... and route them differently


def test_arrivals_follow_the_rate_and_the_intraday_curve() -> None:
    curve = [1.0] * 24
    curve[8], curve[9], curve[10] = 1.0, 3.0, 0.0
    data = one_queue(per_hour=400.0)
    data.update(hours=3.0, curve=curve, agents=[{"group": "a", "count": 40}])
    events = play(data)
    by_hour = Counter(
        (a.ts - START_MS) // 3_600_000 for a in of_type(events, ev.ConversationArrived)
    )
    for hour, weight in ((0, 1.0), (1, 3.0)):
        expected = 400 * weight
        assert abs(by_hour[hour] - expected) <= 4 * math.sqrt(expected), (hour, by_hour)
    assert by_hour[2] == 0
    assert parse_scenario(data).expected_arrivals() == pytest.approx(1600)


def test_a_backlog_is_waiting_at_the_start() -> None:
    events = play(one_queue(per_hour=0.0, backlog=50))
    arrived = of_type(events, ev.ConversationArrived)
    assert len(arrived) == 50
    assert all(START_MS <= a.ts < START_MS + 60_000 for a in arrived)
