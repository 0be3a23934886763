"""The simulation loop: a client of the real engine that plays a scenario onto a log.

What it must do for the people who read its figures: cover every behaviour of a real
contact centre, be reproducible byte for byte, never send an input the engine has to
reject, and send each timer's ``Tick`` exactly when it falls due."""

from __future__ import annotations

import itertools

from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.policy import parse_policy
from omniroute.engine.replay import replay
from omniroute.engine.simulation import simultaneous_legs
from tests.support.simulation import START_MS, of_type, small_in_memory, small_policy


def test_the_small_scenario_exercises_every_behaviour(small_events: list[ev.Event]) -> None:
    events = small_events
    arrived = of_type(events, ev.ConversationArrived)
    assert {a.channel for a in arrived} == set(ev.CHANNELS)
    assert of_type(events, ev.EventRejected) == []
    kinds = {a.agent_id: a.kind for a in of_type(events, ev.AgentRegistered)}
    assert set(kinds.values()) == {"human", "bot"}
    assigned = of_type(events, ev.ConversationAssigned)
    # bots answer support first; some resolve, the rest are handed to humans
    handoffs = of_type(events, ev.HandoffRequested)
    assert handoffs and all(kinds[h.agent_id] == "bot" for h in handoffs)
    handed = {h.conversation_id for h in handoffs}
    assert any(a.conversation_id in handed and kinds[a.agent_id] == "human" for a in assigned)
    # customers switch channel and keep their conversation (continuity)
    rejoins = of_type(events, ev.ConversationRejoined)
    first_channel = {a.conversation_id: a.channel for a in arrived}
    assert any(r.channel != first_channel[r.conversation_id] for r in rejoins)
    # ... with a second live leg (the email during the call) that the agent takes on;
    # the call hangs up while the email goes on
    assert any(m.channels[:2] == ("voice", "email") for m in simultaneous_legs(events))
    assert of_type(events, ev.LegJoined)
    assert any(e.leg is not None for e in of_type(events, ev.ConversationEnded))
    # transfers, abandons (from the queue and from offers), callbacks now and later
    assert {t.mode for t in of_type(events, ev.TransferRequested)} == {"cold", "warm"}
    assert of_type(events, ev.CustomerAbandoned)
    callbacks = of_type(events, ev.CallbackRequested)
    assert {c.not_before is None for c in callbacks} == {True, False}
    # follow-up tasks, agents' declines and missed offers, breaks, shift ends, messages
    assert any(a.conversation_id.endswith("-task") for a in arrived)
    assert of_type(events, ev.OfferDeclined)
    assert of_type(events, ev.AgentNotResponding)
    reasons = {s.reason for s in of_type(events, ev.AgentStatusChanged)}
    assert {"shift", "break", "back from break", "end of shift"} <= reasons
    assert {s.status for s in of_type(events, ev.AgentStatusChanged)} == {
        "available", "away", "offline",
    }  # fmt: skip
    assert of_type(events, ev.MessageReceived)
    assert of_type(events, ev.WrapUpCompleted)
    assert of_type(events, ev.SlaBreached) and of_type(events, ev.ConversationEscalated)
    # event time never goes back; ticks only when a timer is due
    inputs = [e for e in events if not ev.is_decision(e)]
    assert inputs[0].ts == START_MS
    assert all(a <= b for a, b in itertools.pairwise(e.ts for e in inputs))


def test_the_log_replays_to_the_same_decisions(small_log: MemoryLog) -> None:
    result = replay(small_log, small_policy())
    assert result.ok, result


def test_a_seed_gives_the_same_log_byte_for_byte() -> None:
    runs = [small_in_memory(seed)[0].records for seed in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_the_engine_says_when_its_next_timer_falls_due() -> None:
    engine = Engine(parse_policy({"queues": {"default": {"offer_timeout_s": 20}}}))
    assert engine.next_deadline() is None
    engine.apply(ev.AgentRegistered(tenant="t", ts=0, agent_id="a"))
    engine.apply(ev.AgentStatusChanged(tenant="t", ts=0, agent_id="a", status="available"))
    engine.apply(
        ev.ConversationArrived(
            tenant="t", ts=1_000, conversation_id="c", channel="webchat",
            contact=ev.Contact("webchat", "w"),
        )
    )  # fmt: skip
    deadline = engine.next_deadline()
    assert deadline is not None and 1_000 < deadline <= 21_000
    decisions = engine.apply(ev.Tick(tenant="t", ts=21_000))
    assert any(isinstance(d, ev.OfferExpired) for d in decisions)
