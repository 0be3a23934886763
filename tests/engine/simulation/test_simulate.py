"""The simulator: a client of the real engine that plays a scenario onto a log.

What it must do for the people who read its figures: cover every behaviour of a real
contact centre, draw the same arrivals whatever the policy, be reproducible byte for
byte, never send an input the engine has to reject, and follow the scenario's numbers
(arrival rates, the intraday curve, handling times, patience, shifts)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.policy import parse_policy
from omniroute.engine.replay import replay
from omniroute.engine.simulation import (
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    scenario_policy,
    simulate,
)
from tests.support.simulation import simulate_small, small_policy

T = TypeVar("T")
START = "2026-01-05T08:00:00Z"
START_MS = 1_767_600_000_000


def of_type(events: list[ev.Event], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def read(path: Path) -> list[ev.Event]:
    with FileLog(path, readonly=True) as log:
        return [e for _, e in log.read()]


def run(tmp_path: Path, data: dict[str, Any], name: str = "s.olog", **kw: Any) -> list[ev.Event]:
    scenario = parse_scenario(data)
    with FileLog(tmp_path / name, fsync="never") as log:
        simulate(scenario, log, **kw)
    return read(tmp_path / name)


def one_queue(**traffic: Any) -> dict[str, Any]:
    """One voice queue, auto-assigned, no wrap-up; traffic keys override the stream."""
    stream = {"name": "calls", "channel": "voice", "queue": "q", "per_hour": 60.0, "known": 0.0}
    stream.update(traffic)
    return {
        "name": "t", "tenant": "t", "start": START, "hours": 2.0, "seed": 5,
        "policy": {"queues": {"q": {"offer_mode": "auto", "wrap_up_s": 0}}},
        "agents": [{"group": "a", "count": 3}],
        "traffic": [stream],
    }  # fmt: skip


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ev.Event]]:
    path = tmp_path_factory.mktemp("small") / "small.olog"
    simulate_small(path)
    return path, read(path)


# --- a whole contact centre -------------------------------------------------------------


def test_the_small_scenario_exercises_every_behaviour(small: tuple[Path, list[ev.Event]]) -> None:
    _, events = small
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


def test_the_log_replays_to_the_same_decisions(small: tuple[Path, list[ev.Event]]) -> None:
    path, _ = small
    with FileLog(path, readonly=True) as log:
        result = replay(log, small_policy())
    assert result.ok, result


def test_a_seed_gives_the_same_log_byte_for_byte(tmp_path: Path) -> None:
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate_small(tmp_path / f"{name}.olog", seed=seed)
        runs.append((tmp_path / f"{name}.olog").read_bytes())
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def planned_arrivals(events: list[ev.Event]) -> list[tuple[Any, ...]]:
    """Arrivals drawn from the scenario (not switches or follow-ups, made during the run)."""
    return [
        (a.conversation_id, a.ts, a.channel, a.contact, a.customer_id, a.skills)
        for a in of_type(events, ev.ConversationArrived)
        if not a.conversation_id.endswith(("-task", *(f"-{c}" for c in ev.CHANNELS)))
    ]


def test_two_policies_see_the_same_arrivals(tmp_path: Path) -> None:
    scenario, path = load_scenario("small")
    base = scenario_policy(scenario, path.parent)
    logs = []
    for preset in ("longest_idle", "balanced"):
        policy = msgspec.structs.replace(base, preset=preset)
        with FileLog(tmp_path / f"{preset}.olog", fsync="never") as log:
            simulate(scenario, log, policy=policy)
        logs.append(read(tmp_path / f"{preset}.olog"))
    assert planned_arrivals(logs[0]) == planned_arrivals(logs[1])
    assigned = [
        [(a.conversation_id, a.agent_id) for a in of_type(events, ev.ConversationAssigned)]
        for events in logs
    ]
    assert assigned[0] != assigned[1]  # ... and route them differently


# --- the scenario's numbers ---------------------------------------------------------------


def test_arrivals_follow_the_rate_and_the_intraday_curve(tmp_path: Path) -> None:
    curve = [1.0] * 24
    curve[8], curve[9], curve[10] = 1.0, 3.0, 0.0
    data = one_queue(per_hour=400.0)
    data.update(hours=3.0, curve=curve, agents=[{"group": "a", "count": 40}])
    events = run(tmp_path, data)
    by_hour = Counter(
        (a.ts - START_MS) // 3_600_000 for a in of_type(events, ev.ConversationArrived)
    )
    for hour, weight in ((0, 1.0), (1, 3.0)):
        expected = 400 * weight
        assert abs(by_hour[hour] - expected) <= 4 * math.sqrt(expected), (hour, by_hour)
    assert by_hour[2] == 0
    assert parse_scenario(data).expected_arrivals() == pytest.approx(1600)


def test_a_backlog_is_waiting_at_the_start(tmp_path: Path) -> None:
    events = run(tmp_path, one_queue(per_hour=0.0, backlog=50))
    arrived = of_type(events, ev.ConversationArrived)
    assert len(arrived) == 50
    assert all(START_MS <= a.ts < START_MS + 60_000 for a in arrived)


def test_fixed_handling_and_patience_are_played_exactly(tmp_path: Path) -> None:
    data = one_queue(
        per_hour=120.0, by_customer=0.0,
        handle={"dist": "fixed", "mean_s": 100}, patience={"dist": "fixed", "mean_s": 30},
    )  # fmt: skip
    events = run(tmp_path, data)
    arrived = {a.conversation_id: a.ts for a in of_type(events, ev.ConversationArrived)}
    assigned = {a.conversation_id: a.ts for a in of_type(events, ev.ConversationAssigned)}
    ended = {e.conversation_id: e.ts for e in of_type(events, ev.ConversationEnded)}
    abandoned = {e.conversation_id: e.ts for e in of_type(events, ev.CustomerAbandoned)}
    assert assigned and abandoned  # 3 agents, 120 calls an hour of 100 s: some wait too long
    assert all(ended[c] - assigned[c] == 100_000 for c in assigned)
    assert all(abandoned[c] - arrived[c] == 30_000 for c in abandoned)
    assert all(assigned[c] - arrived[c] < 30_000 for c in assigned)
    assert set(assigned) | set(abandoned) == set(arrived)


def test_agents_work_only_on_their_shift_and_finish_what_they_hold(tmp_path: Path) -> None:
    data = one_queue(per_hour=200.0, handle={"dist": "fixed", "mean_s": 600})
    data["agents"] = [{"group": "early", "count": 4, "shift": [0.0, 1.0]},
                      {"group": "late", "count": 4, "shift": [1.0, 2.5]}]  # fmt: skip
    events = run(tmp_path, data)
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


def test_agents_decline_and_ignore_offers_at_the_scenario_rates(tmp_path: Path) -> None:
    data = one_queue(per_hour=600.0, handle={"dist": "fixed", "mean_s": 20})
    data["policy"] = {"queues": {"q": {"wrap_up_s": 0, "offer_timeout_s": 5}}}
    data["agents"] = [{"group": "a", "count": 10, "decline": 0.2, "ignore": 0.1}]
    events = run(tmp_path, data)
    offers = len(of_type(events, ev.ConversationOffered))
    declined = len(of_type(events, ev.OfferDeclined))
    timeouts = sum(e.reason == "timeout" for e in of_type(events, ev.OfferExpired))
    for observed, p in ((declined, 0.2), (timeouts, 0.1)):
        sd = math.sqrt(offers * p * (1 - p))
        assert abs(observed - offers * p) <= 4 * sd, (observed, offers, p)


def test_an_assigned_conversation_is_never_left_without_an_end(tmp_path: Path) -> None:
    """Whatever happened to it (transfers, switches, hand-offs), work ends or is open."""
    path = tmp_path / "s.olog"
    run_ = simulate_small(path, seed=2)
    events = read(path)
    engine = Engine(small_policy())
    for e in events:
        if not ev.is_decision(e):
            engine.apply(e)
    tenant = engine.tenant("small")
    assert tenant is not None and len(tenant.conversations) == run_.open_at_end
    for conv in tenant.conversations.values():  # only long asynchronous work is left
        assert conv.media_class in ("messaging", "email", "social", "task"), conv


def test_a_switch_comes_in_on_its_own_queue_and_priority(tmp_path: Path) -> None:
    data = one_queue(
        channel="webchat", known=1.0, per_hour=120.0,
        switch={"p": 1.0, "to": "voice", "queue": "calls", "priority": 2},
    )  # fmt: skip
    data["policy"]["queues"]["calls"] = {"offer_mode": "auto"}
    events = run(tmp_path, data)
    switched = [a for a in of_type(events, ev.ConversationArrived) if a.channel == "voice"]
    assert switched and {(a.queue, a.priority) for a in switched} == {("calls", 2)}
    requeued = [q for q in of_type(events, ev.ConversationQueued) if q.reason == "channel_switch"]
    assert requeued and {q.queue for q in requeued} == {"calls"}
    scenario = parse_scenario(one_queue(switch={"p": 0.5, "to": "sms", "queue": "nowhere"}))
    with FileLog(tmp_path / "x.olog") as log, pytest.raises(ScenarioError, match="nowhere"):
        simulate(scenario, log)


# --- the scenario file ----------------------------------------------------------------------


def test_the_builtin_scenarios_load_with_their_policies() -> None:
    assert builtin_scenarios() == ["day", "demo", "small", "telco"]
    sizes = {}
    for name in builtin_scenarios():
        scenario, path = load_scenario(name)
        policy = scenario_policy(scenario, path.parent)
        for t in scenario.traffic:
            assert t.queue in policy.queues
        sizes[name] = (round(scenario.expected_arrivals()), sum(g.count for g in scenario.agents))
    assert 25_000 <= sizes["demo"][0] <= 35_000 and 180 <= sizes["demo"][1] <= 230
    assert sizes["telco"][1] == 10_000
    assert 1_800_000 <= sizes["day"][0] <= 2_200_000


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"traffic": [{"name": "x", "channel": "voice", "per_hour": 1, "queue": "q",
                       "pre_hour": 2}]}, "pre_hour"),
        ({"traffic": [{"name": "x", "channel": "fax"}]}, "channel"),
        ({"hours": 0}, "hours"),
        ({"start": "yesterday"}, "start"),
        ({"curve": [1.0, 2.0]}, "curve"),
        ({"agents": [{"group": "a"}, {"group": "a"}]}, "duplicate group"),
        ({"handling": {"voice": {"dist": "lognormal", "mean_s": 100}}}, "sd_s"),
        ({"agents": [{"group": "a", "shift": [5, 2]}]}, "shift"),
        ({"traffic": [{"name": "x", "channel": "voice", "known": 2}]}, "shares"),
    ],
)  # fmt: skip
def test_a_bad_scenario_is_an_error_naming_the_key(change: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"name": "bad"} | change
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data)


def test_a_scenario_needing_what_the_policy_lacks_is_refused(tmp_path: Path) -> None:
    scenario = parse_scenario(one_queue(transfer_to="nowhere"))
    with FileLog(tmp_path / "x.olog") as log, pytest.raises(ScenarioError, match="nowhere"):
        simulate(scenario, log)
    data = one_queue()
    data["agents"] = [{"group": "a", "profile": "gold"}]
    with FileLog(tmp_path / "y.olog") as log, pytest.raises(ScenarioError, match="gold"):
        simulate(parse_scenario(data), log)
    assert read(tmp_path / "y.olog") == []  # refused before anything was written


def test_scenarios_read_toml_and_name_unknown_ones(tmp_path: Path) -> None:
    text = 'name = "toml"\nhours = 0.5\n[[traffic]]\nname = "c"\nchannel = "sms"\nper_hour = 5\n'
    assert parse_scenario(text) == msgspec.convert(
        {"name": "toml", "hours": 0.5,
         "traffic": [{"name": "c", "channel": "sms", "per_hour": 5}]}, Scenario
    )  # fmt: skip
    with pytest.raises(ScenarioError, match="TOML"):
        parse_scenario("name = ")
    with pytest.raises(ScenarioError, match="small"):
        load_scenario("no-such-scenario")


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
