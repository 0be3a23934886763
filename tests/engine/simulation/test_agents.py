"""Agents: shifts, offers declined or left to time out, and work that always ends."""

from __future__ import annotations

import math

from omniroute.engine import Engine
from omniroute.engine import events as ev
from tests.support.simulation import (
    START_MS,
    events_of,
    of_type,
    one_queue,
    play,
    small_in_memory,
    small_policy,
)


def test_agents_work_only_on_their_shift_and_finish_what_they_hold() -> None:
    data = one_queue(per_hour=200.0, handle={"dist": "fixed", "mean_s": 600})
    data["agents"] = [{"group": "early", "count": 4, "shift": [0.0, 1.0]},
                      {"group": "late", "count": 4, "shift": [1.0, 2.5]}]  # fmt: skip
    events = play(data)
    hour = 3_600_000
    status = of_type(events, ev.AgentStatusChanged)
    for a in of_type(events, ev.ConversationAssigned):
        offset = a.ts - START_MS
        assert (offset < hour) if a.agent_id.startswith("early") else (offset >= hour)
    offline = {s.agent_id: s.ts for s in status if s.status == "offline"}
    holder = {a.conversation_id: a.agent_id for a in of_type(events, ev.ConversationAssigned)}
    for e in of_type(events, ev.ConversationEnded):
        assert e.ts <= offline.get(holder[e.conversation_id], e.ts)  # ended before logging off
    assert all(offline[f"early-000{i}"] >= START_MS + hour for i in range(1, 5))
    queued = of_type(events, ev.ConversationQueued)
    assert not [q for q in queued if q.reason == "agent_offline"]  # nothing handed back


def test_agents_decline_and_ignore_offers_at_the_scenario_rates() -> None:
    data = one_queue(per_hour=600.0, handle={"dist": "fixed", "mean_s": 20})
    data["policy"] = {"queues": {"q": {"wrap_up_s": 0, "offer_timeout_s": 5}}}
    data["agents"] = [{"group": "a", "count": 10, "decline": 0.2, "ignore": 0.1}]
    events = play(data)
    offers = len(of_type(events, ev.ConversationOffered))
    declined = len(of_type(events, ev.OfferDeclined))
    timeouts = sum(e.reason == "timeout" for e in of_type(events, ev.OfferExpired))
    for observed, p in ((declined, 0.2), (timeouts, 0.1)):
        sd = math.sqrt(offers * p * (1 - p))
        assert abs(observed - offers * p) <= 4 * sd, (observed, offers, p)


def test_an_assigned_conversation_is_never_left_without_an_end() -> None:
    """Whatever happened to it (transfers, switches, hand-offs), work ends or is open."""
    log, run_ = small_in_memory(seed=2)
    events = events_of(log)
    engine = Engine(small_policy())
    for e in events:
        if not ev.is_decision(e):
            engine.apply(e)
    tenant = engine.tenant("small")
    assert tenant is not None and len(tenant.conversations) == run_.open_at_end
    for conv in tenant.conversations.values():  # only long asynchronous work is left
        assert conv.media_class in ("messaging", "email", "social", "task"), conv
