"""Routing quality where channels, targets and skills share one pool (issue 14), measured
on simulated days through the real engine.

Every figure is computed here from the log's inputs and decisions, not from the engine's
SLA timers or the reporting projection: a contact is answered at its first
``ConversationAssigned`` (a call, a chat) or at the agent's first ``MessageReceived`` out
(an email or a messaging conversation: ``policy.REPLY_CLASSES``); it is in its SLA when
that comes within the target of its ``ConversationArrived``.

Statistics: the arrivals, in arrival order, are cut into consecutive batches and the
standard error (SE) of each figure comes from the batch totals
(:mod:`tests.support.batch_means`). Two policies on the same scenario and seed see the
same arrivals (each stream draws from its own random stream), so a comparison is paired:
the per-arrival difference, batched, gives the SE of the difference, much smaller than
either figure's own. A claim "at least x" passes when the estimate is within ``Z`` SE
of x or above it; each test also shows that the claim fails where it should (the old
rule, or a weaker setting), so the tolerance does not make it vacuous. The runs are
seeded: the outcome is deterministic, ``Z`` says how unlucky a seed would have to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.policy import CHANNEL_CLASS, REPLY_CLASSES, Policy, parse_policy
from omniroute.engine.simulation import Scenario, load_scenario, scenario_policy, simulate
from tests.support.batch_means import Estimate, batch_ratio
from tests.support.simulation import events_of

Z = 3.0
"""One-sided claims at 3 SE: about 1 in 700 for an unlucky seed (batch t(24))."""
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Answers:
    """Each contact of a run, in arrival order, as read from the log."""

    cid: list[str]
    queue: npt.NDArray[np.str_]
    channel: npt.NDArray[np.str_]
    arrived_ms: npt.NDArray[np.int64]
    wait_ms: npt.NDArray[np.float64]
    """Arrival to first answer (assignment, or first reply); ``inf``: never answered."""

    def within(self, target_s: float, **where: str) -> tuple[npt.NDArray[np.bool_], Any]:
        """(answered within ``target_s``, the selection) for contacts matching ``where``."""
        keep = np.ones(len(self.cid), dtype=np.bool_)
        for field, value in where.items():
            keep &= getattr(self, field) == value
        return self.wait_ms[keep] <= target_s * 1000, keep

    def since(self, ts: int) -> Answers:
        keep = self.arrived_ms >= ts
        return Answers(
            [c for c, k in zip(self.cid, keep, strict=True) if k], self.queue[keep],
            self.channel[keep], self.arrived_ms[keep], self.wait_ms[keep],
        )  # fmt: skip


def answers(events: list[ev.Event]) -> Answers:
    """First answer of every contact: assignment for live work, first reply for written."""
    arrived: dict[str, ev.ConversationArrived] = {}
    answered: dict[str, int] = {}
    for e in events:
        if isinstance(e, ev.ConversationArrived):
            arrived[e.conversation_id] = e
        elif isinstance(e, ev.ConversationAssigned):
            if CHANNEL_CLASS[arrived[e.conversation_id].channel] not in REPLY_CLASSES:
                answered.setdefault(e.conversation_id, e.ts)
        elif isinstance(e, ev.MessageReceived) and e.direction == "out":
            answered.setdefault(e.conversation_id, e.ts)
    order = sorted(arrived, key=lambda cid: (arrived[cid].ts, cid))
    return Answers(
        cid=order,
        queue=np.array([arrived[c].queue for c in order]),
        channel=np.array([arrived[c].channel for c in order]),
        arrived_ms=np.array([arrived[c].ts for c in order], dtype=np.int64),
        wait_ms=np.array(
            [answered[c] - arrived[c].ts if c in answered else np.inf for c in order],
            dtype=np.float64,
        ),
    )


def run(scenario: Scenario, policy: Policy, complete: bool = True) -> Answers:
    """Simulate into memory; every contact's first answer (arrivals of the first hour,
    while the floor fills up, left out). ``complete``: every conversation was closed."""
    log = MemoryLog()
    result = simulate(scenario, log, policy=policy)
    assert result.rejected == 0 and (result.open_at_end == 0 or not complete), result
    return answers(events_of(log)).since(scenario.start_ms + HOUR_MS)


def builtin(name: str, hours: float, seed: int, **settings: Any) -> tuple[Scenario, Policy]:
    """A built-in scenario for ``hours`` with ``seed``, and its policy with ``settings``."""
    scenario, path = load_scenario(name)
    scenario = msgspec.structs.replace(scenario, hours=hours, seed=seed)
    return scenario, changed(scenario_policy(scenario, path.parent), **settings)


def changed(policy: Policy, **settings: Any) -> Policy:
    return parse_policy({**msgspec.to_builtins(policy), **settings})


def paired(a: npt.ArrayLike, b: npt.ArrayLike) -> Estimate:
    """Mean of ``a - b`` over the same arrivals, with its batch-means SE."""
    return batch_ratio(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


# --- two targets: earliest deadline first against arrival order ---------------------------


def check_deadline_beats_arrival(hours: float, seed: int) -> None:
    """The built-in ``targets`` scenario: two web-chat queues (30 s and 5 min targets),
    equal load, 85 % of the agents' chat slots busy, nobody abandons."""
    scenario, policy = builtin("targets", hours, seed)
    assert policy.urgency == "deadline"
    edf, fifo = run(scenario, policy), run(scenario, changed(policy, urgency="arrival"))
    assert edf.cid == fifo.cid  # the same arrivals

    def breaches(out: Answers) -> npt.NDArray[np.bool_]:
        target_s = np.array([policy.queues[str(q)].sla_for("webchat") for q in out.queue])
        return out.wait_ms > target_s * 1000

    fewer = paired(breaches(fifo), breaches(edf))
    print(f"breaches: arrival {breaches(fifo).mean():.4f}, deadline "
          f"{breaches(edf).mean():.4f}; fewer with deadline {fewer.value:.4f} ± "
          f"{fewer.se:.4f} ({len(edf.cid)} chats)")  # fmt: skip
    assert sorted({policy.queues[str(q)].sla_for("webchat") for q in edf.queue}) == [30, 300]
    assert fewer.value - Z * fewer.se > 0
    assert np.isfinite(edf.wait_ms).all()  # nobody waits without end


def test_earliest_deadline_first_breaches_less_than_arrival_order() -> None:
    check_deadline_beats_arrival(hours=40.0, seed=1)


@pytest.mark.slow
def test_earliest_deadline_first_breaches_less_on_a_long_run() -> None:
    check_deadline_beats_arrival(hours=400.0, seed=2)


# --- skills chaining: the primary-skill preference -----------------------------------------

CHAIN_SL_GOAL = 0.67


def check_chain(hours: float, seed: int) -> None:
    """The built-in ``chain`` scenario under its recommended policy, and under the same
    policy without the primary-skill preference: the share answered within 20 s."""
    scenario, policy = builtin("chain", hours, seed)
    assert policy.prefer_window_s > 0
    prefer, _ = run(scenario, policy).within(20.0)
    plain, _ = run(scenario, changed(policy, prefer_window_s=0.0)).within(20.0)
    sl, gain = batch_ratio(prefer), paired(prefer, plain)
    print(f"chain SL(20 s): preferring the primary skill {sl.value:.4f} ± {sl.se:.4f}, "
          f"without {plain.mean():.4f}; gain {gain.value:+.4f} ± {gain.se:.4f}")  # fmt: skip
    assert gain.value - Z * gain.se > 0  # on the same calls, the preference answers more
    assert sl.value + Z * sl.se >= CHAIN_SL_GOAL


def test_chaining_with_the_primary_skill_preference_reaches_the_goal() -> None:
    check_chain(hours=30.0, seed=5)


@pytest.mark.slow
def test_chaining_reaches_the_goal_on_a_long_run() -> None:
    check_chain(hours=200.0, seed=6)


# --- blending calls and emails ---------------------------------------------------------

EMAIL_TARGET_S = 7200.0
EMAIL_GOAL = 0.95
VOICE_POINTS = 0.02


def voice_alone(scenario: Scenario) -> Scenario:
    """The same calls on the agents left after the email load (30 - 6 Erlangs): 24."""
    email_erlangs = sum(
        t.per_hour * scenario.handling["email"].mean_s / 3600
        for t in scenario.traffic
        if t.channel == "email"
    )
    (group,) = scenario.agents
    left = msgspec.structs.replace(group, count=group.count - round(email_erlangs))
    calls = [t for t in scenario.traffic if t.channel == "voice"]
    return msgspec.structs.replace(scenario, agents=[left], traffic=calls)


def check_blend(hours: float, seed: int) -> None:
    scenario, policy = builtin("blend", hours, seed)
    both = run(scenario, policy)
    alone = run(voice_alone(scenario), policy)
    assert sum(g.count for g in voice_alone(scenario).agents) == 24
    voice_both, voice = both.within(20.0, channel="voice")
    voice_alone_met, _ = alone.within(20.0)
    assert [c for c, k in zip(both.cid, voice, strict=True) if k] == alone.cid
    better = paired(voice_both, voice_alone_met)
    emails, _ = both.within(EMAIL_TARGET_S, channel="email")
    replied = batch_ratio(emails)
    print(f"blend: voice SL(20 s) {voice_both.mean():.4f} vs {voice_alone_met.mean():.4f} alone "
          f"on 24 agents (difference {better.value:+.4f} ± {better.se:.4f}); emails replied "
          f"within 2 h {replied.value:.4f} ± {replied.se:.4f}")  # fmt: skip
    assert better.value + Z * better.se >= -VOICE_POINTS
    assert replied.value + Z * replied.se >= EMAIL_GOAL
    # the claim can fail: with 25 agents for the 26 Erlangs of work, emails wait for hours
    short = msgspec.structs.replace(scenario.agents[0], count=25)
    out = run(msgspec.structs.replace(scenario, agents=[short]), policy, complete=False)
    late = batch_ratio(out.within(EMAIL_TARGET_S, channel="email")[0])
    assert late.value + Z * late.se < EMAIL_GOAL


def test_blending_keeps_voice_and_answers_emails_within_two_hours() -> None:
    check_blend(hours=40.0, seed=3)


@pytest.mark.slow
def test_blending_on_a_long_run() -> None:
    check_blend(hours=300.0, seed=4)
