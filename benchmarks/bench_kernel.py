"""Matching kernel at telco scale: decisions per second and latency, against the reference.

Scenario ``telco`` (DESIGN.md §10): 10,000 agents with 2-8 of 200 skills at levels 1-5,
8 channels, a backlog of 100,000 queued conversations. Agents are busy, so the stream
is what a loaded contact centre sees: a conversation ends and its agent asks for the
most urgent conversation they can take (question 2); a new conversation arrives and
asks for the best agent (question 1), and waits when nobody has room; agents go on a
break and come back. Each decision is one call through ``TenantMatcher`` (Python
wrapper + kernel), timed alone; the upkeep of the indexes (agent rows, queue entries)
is timed apart. The same stream runs on the pure-Python reference for the speedup.

    python benchmarks/bench_kernel.py [--quick] [--json] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from omniroute import core_ext
from omniroute.core_ext import reference
from omniroute.engine import matching
from omniroute.engine.events import Contact
from omniroute.engine.matching import CLASS_INDEX, ProfileTable, TenantMatcher
from omniroute.engine.policy import CHANNEL_CLASS, Policy
from omniroute.engine.state import AgentState, ConversationState

CHANNEL_MIX = ("voice", "webchat", "whatsapp", "sms", "messenger", "telegram", "email", "social")


@dataclass
class Scale:
    agents: int
    skills: int
    queued: int
    decisions: int
    reference_decisions: int


FULL = Scale(agents=10_000, skills=200, queued=100_000, decisions=200_000, reference_decisions=40)
QUICK = Scale(agents=10_000, skills=200, queued=100_000, decisions=40_000, reference_decisions=8)


@dataclass
class Desk:
    """A tenant's agents and conversations, driven through one ``TenantMatcher``."""

    policy: Policy
    matcher: TenantMatcher
    rng: random.Random
    skills: list[str]
    agents: list[AgentState] = field(default_factory=list)
    convs: dict[str, ConversationState] = field(default_factory=dict)
    held: list[tuple[AgentState, ConversationState]] = field(default_factory=list)
    seq: int = 0
    now: int = 1_767_000_000_000

    def costs(self, agent: AgentState, conv: ConversationState) -> int:
        return self.policy.profiles[agent.profile].classes[conv.media_class].cost

    def new_conversation(self) -> ConversationState:
        self.seq += 1
        channel = self.rng.choice(CHANNEL_MIX)
        picked = self.rng.sample(self.skills, self.rng.randint(1, 2))
        need = {s: self.rng.randint(1, 3) for s in picked}
        return ConversationState(
            conversation_id=f"c{self.seq}", seq=self.seq, channel=channel,  # type: ignore[arg-type]
            media_class=CHANNEL_CLASS[channel], contact=Contact(channel, f"+{self.seq}"),  # type: ignore[arg-type,index]
            customer_id=f"k{self.seq}", queue="default", skills=need, optional_skills={},
            language=None, priority=self.rng.choice((0, 0, 0, 1, 2)),
            first_contact_ts=self.now - self.rng.randint(0, 3_600_000),
            sla_deadline=self.now + self.rng.randint(-600_000, 600_000),
        )  # fmt: skip

    def hold(self, agent: AgentState, conv: ConversationState) -> None:
        c = CLASS_INDEX[conv.media_class]
        agent.units[c] += self.costs(agent, conv)
        agent.counts[c] += 1
        self.held.append((agent, conv))

    def release(self, index: int) -> AgentState:
        agent, conv = self.held[index]
        self.held[index] = self.held[-1]
        self.held.pop()
        c = CLASS_INDEX[conv.media_class]
        agent.units[c] -= self.costs(agent, conv)
        agent.counts[c] -= 1
        return agent


def build(scale: Scale, seed: int) -> Desk:
    policy = Policy()
    rng = random.Random(seed)
    skills = [f"skill{i:03d}" for i in range(scale.skills)]
    desk = Desk(policy, TenantMatcher(policy, ProfileTable(policy)), rng, skills)
    for slot in range(scale.agents):
        agent = AgentState(
            agent_id=f"a{slot}", seq=slot, slot=slot, kind="human",
            skills={s: rng.randint(1, 5) for s in rng.sample(skills, rng.randint(2, 8))},
            profile="default", languages=[], status="available", units=[0] * 7, counts=[0] * 7,
            idle_since=desk.now - rng.randint(0, 600_000),
        )  # fmt: skip
        desk.agents.append(agent)
        desk.matcher.agent_at[slot] = agent.agent_id
    # fill the agents with work first, so the backlog is a real backlog
    for agent in desk.agents:
        for _ in range(8):
            conv = desk.new_conversation()
            cost = desk.costs(agent, conv) if conv.media_class in ("chat", "messaging", "email",
                                                                  "social") else 0  # fmt: skip
            c = CLASS_INDEX[conv.media_class]
            limit = policy.profiles["default"].classes[conv.media_class]
            if cost and agent.counts[c] < limit.max and sum(agent.units) + cost <= 100:
                desk.hold(agent, conv)
        desk.matcher.table.sync(agent)
    while len(desk.convs) < scale.queued:
        conv = desk.new_conversation()
        desk.convs[conv.conversation_id] = conv
        desk.matcher.enqueue(conv, [], -1, 0)
    return desk


@dataclass
class Timings:
    decisions: list[int] = field(default_factory=list)
    upkeep_ns: int = 0
    matched: int = 0


def run_stream(desk: Desk, n_decisions: int) -> Timings:
    """Completions (question 2), arrivals (question 1) and breaks, one decision at a time."""
    rng, matcher, t = desk.rng, desk.matcher, Timings()
    clock = time.perf_counter_ns
    while len(t.decisions) < n_decisions:
        desk.now += rng.randint(0, 50)
        roll = rng.random()
        if roll < 0.55 and desk.held:  # a conversation ends: its agent asks for work
            start = clock()
            agent = desk.release(rng.randrange(len(desk.held)))
            matcher.table.sync(agent)
            t.upkeep_ns += clock() - start
            while True:
                start = clock()
                cid = matcher.most_urgent(agent.slot, desk.now)
                t.decisions.append(clock() - start)
                if cid is None:
                    break
                start = clock()
                conv = desk.convs.pop(cid)
                matcher.dequeue(cid)
                desk.hold(agent, conv)
                matcher.table.sync(agent)
                t.upkeep_ns += clock() - start
                t.matched += 1
        elif roll < 0.95:  # a conversation arrives: which agent is best?
            conv = desk.new_conversation()
            start = clock()
            slot, _ = matcher.best_agent(conv, [], -1, -1, desk.now, 0)
            t.decisions.append(clock() - start)
            start = clock()
            if slot >= 0:
                agent = desk.agents[slot]
                desk.hold(agent, conv)
                matcher.table.sync(agent)
                t.matched += 1
            else:
                desk.convs[conv.conversation_id] = conv
                matcher.enqueue(conv, [], -1, 0)
            t.upkeep_ns += clock() - start
        else:  # an agent goes on a break, another comes back
            agent = rng.choice(desk.agents)
            start = clock()
            agent.status = "away" if agent.status == "available" else "available"
            matcher.table.sync(agent)
            t.upkeep_ns += clock() - start
            if agent.status == "available":
                start = clock()
                matcher.most_urgent(agent.slot, desk.now)
                t.decisions.append(clock() - start)
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer decisions (< 30 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    if core_ext.KERNEL != "compiled":
        print("the compiled kernel is not built", file=sys.stderr)
        return 2

    started = time.perf_counter()
    desk = build(scale, args.seed)
    build_s = time.perf_counter() - started
    compiled = run_stream(desk, scale.decisions)

    kernel = matching.kernel
    matching.kernel = reference  # the same desk and stream on the pure-Python twin
    try:
        ref = run_stream(build(scale, args.seed), scale.reference_decisions)
    finally:
        matching.kernel = kernel

    lat = np.array(compiled.decisions, np.float64) / 1000.0
    decisions_per_s = len(lat) / (lat.sum() / 1e6)
    ref_lat = np.array(ref.decisions, np.float64) / 1000.0
    reference_per_s = len(ref_lat) / (ref_lat.sum() / 1e6)
    result = {
        "scenario": "telco",
        "agents": scale.agents,
        "skills": scale.skills,
        "queued": scale.queued,
        "channels": len(CHANNEL_MIX),
        "decisions": len(lat),
        "matched": compiled.matched,
        "decisions_per_s": round(decisions_per_s),
        "p50_us": round(float(np.percentile(lat, 50)), 2),
        "p99_us": round(float(np.percentile(lat, 99)), 2),
        "max_us": round(float(lat.max()), 2),
        "upkeep_us_per_decision": round(compiled.upkeep_ns / 1000 / len(lat), 2),
        "reference_decisions": len(ref_lat),
        "reference_decisions_per_s": round(reference_per_s, 2),
        "speedup": round(decisions_per_s / reference_per_s, 1),
        "build_s": round(build_s, 2),
        "kernel": core_ext.KERNEL,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>28}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
