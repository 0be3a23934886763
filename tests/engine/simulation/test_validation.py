"""The simulator driving the real engine reproduces Erlang C and Erlang A (DESIGN.md §10).

A single queue, one skill, homogeneous agents, ``offer_mode = "auto"`` (assigned at
once, no offer round trip), no wrap-up, exponential handling and (Erlang A) exponential
patience, anonymous callers (``known = 0``: no rejoins, no sticky-agent waits): this is
exactly M/M/N FCFS (M/M/N+M with patience), so the figures computed FROM THE LOG (not
from the simulator's counters) must agree with ``tests/oracles/queueing.py`` within noise.

Statistics. Arrivals of the first ``WARMUP_H`` hours are discarded (the run starts
empty). The remaining arrivals, in arrival order, are cut into ``BATCHES`` equal
consecutive batches; each figure is a ratio ``sum Y / sum X`` over arrivals (X = 1 for
a probability over all arrivals, X = answered for the mean wait of answered calls) and
its standard error comes from the batch totals (batch means with the delta method for a
ratio). Waits are autocorrelated (a busy spell spans many callers); batches of thousands
of arrivals are many relaxation times long (about ``2 rho / (1 - rho)^2`` arrivals in
heavy traffic), so batch means are close to independent.

Tolerance: ``|simulated - formula| <= Z * SE + allowance``.

- ``Z = 4``: the SE is estimated from 25 batches, so the studentised error is about
  t(24); P(|t24| > 4) is about 5e-4, and with about 20 comparisons in the default run the
  chance that a correct engine fails some comparison is about 1 % (Bonferroni), and
  still small if batch correlation makes the SE a little optimistic. The runs are
  seeded, so the outcome is deterministic; ``Z`` says how unlucky a seed would have to be.
- ``allowance`` is for time being integer milliseconds. The engine is exact on the
  inputs it is given (the sample-path test below), so only the inputs are discretised:
  arrival instants are truncated to the ms and every handling time and patience is
  rounded to it, moving each event by under 1 ms. A caller's outcome (waited or not,
  answered or not, within 20 s or not) can only change if another event (a departure,
  rate <= N mu; an arrival, rate lam) or the 20 s mark, which the wait density (<= N mu)
  crosses, lies within those few ms: probability <= ``(N mu + lam) * DISCRETE_S`` with
  ``DISCRETE_S = 2 ms`` (6e-5 to 9e-4 for the default cases). A mean wait moves by at
  most a few ms: ``ASA_ALLOWANCE_S = 0.005``. Both are far below the SEs, so the test's
  power comes from the confidence interval, not from the allowance.

Power: the same simulated logs, compared with the formulas for ``N - 1`` agents, must
fall outside the tolerance (``test_..._can_fail``); the slow runs also reject a 5 %
error in the mean handling time.

Calibration (done once, not run here): 30-90 seeds per default case at these lengths.
The pooled mean of every figure agreed with its formula (the pooled z of one set of 30 was
-2.9, and 60 more seeds of the same case gave +0.3), the spread of ``(sim - formula) / SE``
across seeds had a standard deviation of 0.8-1.15, and 1 run of 250 had a figure beyond
4 SE (a mean wait, at 4.5). Mean waits are the slowest to mix: at 95 % occupancy the
integrated autocorrelation of successive waits is about 1,500 calls, so the ``heavy``
case runs about 5,000 calls a batch (with 2,500 the SE came out about 35 % too small and
one seed of 30 reached 4.9 SE).

Besides the statistics, ``test_the_engine_serves_in_order_...`` checks the sample path
exactly: given the log's own arrivals, handling times and abandons, every start of
service is the one an FCFS, work-conserving queue would give (Kiefer-Wolfowitz recursion).
"""

from __future__ import annotations

import functools
import heapq
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from omniroute.engine.events import (
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    CustomerAbandoned,
    SlaBreached,
)
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.simulation import parse_scenario, simulate
from tests.oracles.queueing import erlang_a, erlang_c, per_hour
from tests.support.batch_means import BATCHES, Estimate, batch_ratio
from tests.support.simulation import events_of

Z = 4.0
WARMUP_H = 2.0
SL_TARGET_S = 20.0
DISCRETE_S = 0.002
ASA_ALLOWANCE_S = 0.005

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Case:
    """One M/M/N(+M) system and how long to simulate it."""

    name: str
    per_hour: float
    handle_s: float
    agents: int
    patience_s: float | None  # None: infinite patience (Erlang C)
    hours: float
    seed: int = 1

    @property
    def p_allowance(self) -> float:
        """Discretisation allowance for a probability: ``(N mu + lam) * DISCRETE_S``."""
        return (self.agents / self.handle_s + self.per_hour / 3600.0) * DISCRETE_S

    @property
    def occupancy(self) -> float:
        """Offered load per agent ``a / N`` (above 1 only with abandonment)."""
        return self.per_hour * self.handle_s / 3600.0 / self.agents

    def scenario(self) -> dict[str, Any]:
        traffic: dict[str, Any] = {
            "name": "calls", "channel": "voice", "queue": "voice", "per_hour": self.per_hour,
            "known": 0.0, "callback": 0.0,
            "handle": {"dist": "exponential", "mean_s": self.handle_s},
        }  # fmt: skip
        if self.patience_s is not None:
            traffic["patience"] = {"dist": "exponential", "mean_s": self.patience_s}
        return {
            "name": self.name, "tenant": "sim", "start": "2026-01-05T00:00:00Z",
            "hours": self.hours, "seed": self.seed, "drain_minutes": 600.0,
            # no default patience for voice: without a stream patience, callers wait forever
            "patience": {},
            "policy": {"preset": "longest_idle", "queues": {"voice": {
                "skills": {"voice": 1}, "offer_mode": "auto", "wrap_up_s": 0,
                "sla_s": {"voice": SL_TARGET_S},
            }}},
            "agents": [{"group": "agent", "count": self.agents, "skills": {"voice": 1},
                        "wrap_up_s": None}],
            "traffic": [traffic],
        }  # fmt: skip


@dataclass(frozen=True)
class Outcomes:
    """Every arrival, in arrival order, as read back from the log."""

    start_ms: int
    """When the run starts (empty, every agent available)."""
    arrival_ms: IntArray
    wait_ms: IntArray
    """Answered: ``wait_ms`` of ``ConversationAssigned``; abandoned: time to abandon."""
    answered: BoolArray
    handle_ms: IntArray
    """Answered: ``ConversationEnded.ts - ConversationAssigned.ts``; abandoned: 0."""
    breached: BoolArray
    """The engine emitted ``SlaBreached`` (its own timer, just past the 20 s target)."""

    def since(self, ts: int) -> Outcomes:
        """The arrivals at or after ``ts`` (the warm-up cut)."""
        keep = self.arrival_ms >= ts
        return Outcomes(
            self.start_ms, self.arrival_ms[keep], self.wait_ms[keep], self.answered[keep],
            self.handle_ms[keep], self.breached[keep],
        )  # fmt: skip


@functools.cache
def simulated(case: Case) -> Outcomes:
    """Run the case into a fresh MemoryLog and read every arrival's outcome from the log."""
    scenario = parse_scenario(case.scenario())
    log = MemoryLog()
    run = simulate(scenario, log)
    events = events_of(log)
    assert run.rejected == 0 and run.open_at_end == 0, run
    arrived: dict[str, int] = {}
    outcome: dict[str, tuple[int, bool]] = {}
    ended: dict[str, int] = {}
    breached: set[str] = set()
    for event in events:
        if isinstance(event, ConversationArrived):
            arrived[event.conversation_id] = event.ts
        elif isinstance(event, ConversationAssigned):
            cid = event.conversation_id
            assert cid not in outcome, f"{cid} assigned twice or after abandoning"
            # the engine's wait (from first contact) is the log's own time difference
            assert event.wait_ms == event.ts - arrived[cid]
            outcome[cid] = (event.wait_ms, True)
        elif isinstance(event, CustomerAbandoned):
            cid = event.conversation_id
            assert cid not in outcome, f"{cid} abandoned after being assigned"
            outcome[cid] = (event.ts - arrived[cid], False)
        elif isinstance(event, ConversationEnded):
            cid = event.conversation_id
            ended[cid] = event.ts - arrived[cid] - outcome[cid][0]
        elif isinstance(event, SlaBreached):
            breached.add(event.conversation_id)
    assert outcome.keys() == arrived.keys()  # every caller is answered or abandons
    assert ended.keys() == {cid for cid, (_, answered) in outcome.items() if answered}
    order = sorted(arrived, key=lambda cid: (arrived[cid], cid))  # ids count up
    return Outcomes(
        start_ms=scenario.start_ms,
        arrival_ms=np.array([arrived[cid] for cid in order], dtype=np.int64),
        wait_ms=np.array([outcome[cid][0] for cid in order], dtype=np.int64),
        answered=np.array([outcome[cid][1] for cid in order], dtype=np.bool_),
        handle_ms=np.array([ended.get(cid, 0) for cid in order], dtype=np.int64),
        breached=np.array([cid in breached for cid in order], dtype=np.bool_),
    )


def measured(case: Case) -> Outcomes:
    """The arrivals after the warm-up (the run starts empty)."""
    out = simulated(case)
    return out.since(out.start_ms + round(WARMUP_H * 3_600_000))


def fcfs_starts(out: Outcomes, agents: int) -> tuple[IntArray, int]:
    """Service starts of an FCFS, work-conserving ``agents``-server queue fed the log's
    own arrivals, handling times and abandons (the Kiefer-Wolfowitz recursion).

    Returns the start of each answered caller (-1 for the abandoned) and how many
    abandoned callers were still waiting when FCFS would have served them.
    """
    free = [out.start_ms] * agents  # a heap of the times the agents become free
    starts = np.full(len(out.arrival_ms), -1, dtype=np.int64)
    late = 0
    for i, (arrival, wait, answered, handle) in enumerate(
        zip(out.arrival_ms.tolist(), out.wait_ms.tolist(), out.answered.tolist(),
            out.handle_ms.tolist(), strict=True)
    ):  # fmt: skip
        if answered:
            start = max(arrival, heapq.heappop(free))
            heapq.heappush(free, start + handle)
            starts[i] = start
        elif arrival + wait > max(arrival, free[0]):
            late += 1
    return starts, late


@dataclass(frozen=True)
class Row:
    """One figure: simulated (with SE), formula, and whether it is within tolerance."""

    metric: str
    simulated: Estimate
    formula: float
    allowance: float

    @property
    def tolerance(self) -> float:
        return Z * self.simulated.se + self.allowance

    @property
    def ok(self) -> bool:
        return abs(self.simulated.value - self.formula) <= self.tolerance

    def __str__(self) -> str:
        diff = self.simulated.value - self.formula
        z = diff / self.simulated.se if self.simulated.se > 0 else math.inf
        return (
            f"{self.metric:>10}: sim {self.simulated.value:10.5f} ± {self.simulated.se:.5f}"
            f"  formula {self.formula:10.5f}  diff {diff:+.5f} ({z:+.2f} SE)"
            f"  tol {self.tolerance:.5f}  {'ok' if self.ok else 'OUT'}"
        )


def compare(
    case: Case, out: Outcomes, agents: int | None = None, handle_s: float | None = None
) -> list[Row]:
    """Simulated figures of ``out`` against the formulas (for ``agents``/``handle_s``
    instead of the case's own, to show what a wrong model looks like)."""
    n = case.agents if agents is None else agents
    handle = case.handle_s if handle_s is None else handle_s
    lam = per_hour(case.per_hour)
    waited = (out.wait_ms > 0) | ~out.answered
    met = out.answered & (out.wait_ms <= round(SL_TARGET_S * 1000))
    wait_s = out.wait_ms / 1000.0
    if case.patience_s is None:
        c = erlang_c(lam, handle, n)
        return [
            Row("P(wait>0)", batch_ratio(waited), c.p_wait, case.p_allowance),
            Row("SL(20s)", batch_ratio(met), c.service_level(SL_TARGET_S), case.p_allowance),
            Row("ASA s", batch_ratio(wait_s), c.asa_s, ASA_ALLOWANCE_S),
        ]
    a = erlang_a(lam, handle, case.patience_s, n)
    return [
        Row("P(wait>0)", batch_ratio(waited), a.p_wait, case.p_allowance),
        Row("P(abandon)", batch_ratio(~out.answered), a.p_abandon, case.p_allowance),
        Row("SL(20s)", batch_ratio(met), a.service_level(SL_TARGET_S), case.p_allowance),
        Row(
            "SL|ans",
            batch_ratio(met, out.answered),
            a.service_level_answered(SL_TARGET_S),
            case.p_allowance,
        ),
        Row(
            "ASA s",
            batch_ratio(np.where(out.answered, wait_s, 0.0), out.answered),
            a.asa_s,
            ASA_ALLOWANCE_S,
        ),
        Row("E[W] s", batch_ratio(wait_s), a.mean_wait_s, ASA_ALLOWANCE_S),
    ]


def report(case: Case, out: Outcomes, rows: list[Row]) -> str:
    head = (
        f"{case.name}: N={case.agents} occupancy={case.occupancy:.3f} "
        f"arrivals={len(out.arrival_ms)} (after {WARMUP_H:g} h warm-up), {BATCHES} batches"
    )
    return "\n".join([head, *map(str, rows)])


def assert_agrees(case: Case) -> None:
    out = measured(case)
    # The engine's SLA timer agrees with the waits in the log: a breach for every caller
    # still waiting past 20 s, none for one answered within it (``W <= t`` is met).
    target_ms = round(SL_TARGET_S * 1000)
    assert np.array_equal(out.breached, out.wait_ms > target_ms)
    rows = compare(case, out)
    print(report(case, out, rows))
    assert all(row.ok for row in rows), report(case, out, rows)


# --- Erlang C: M/M/N ---------------------------------------------------------------------

ERLANG_C = [
    Case("light", per_hour=42, handle_s=240, agents=4, patience_s=None, hours=600),
    Case("medium", per_hour=102, handle_s=300, agents=10, patience_s=None, hours=300),
    Case("heavy", per_hour=570, handle_s=180, agents=30, patience_s=None, hours=220),
]
ERLANG_A = [
    Case("impatient", per_hour=110, handle_s=300, agents=10, patience_s=200, hours=300),
    Case("overloaded", per_hour=780, handle_s=240, agents=50, patience_s=120, hours=50),
]


def _cases(cases: list[Case]) -> list[Any]:
    """The cases as parameters; ``heavy`` (95 % occupancy: the longest run, about a
    minute) runs with the slow ones, beside its longer twins."""
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow] * (c.name == "heavy"))
            for c in cases]  # fmt: skip


@pytest.mark.parametrize("case", _cases(ERLANG_C))
def test_simulated_m_m_n_matches_erlang_c(case: Case) -> None:
    assert_agrees(case)


@pytest.mark.parametrize("case", _cases(ERLANG_A))
def test_simulated_m_m_n_m_matches_erlang_a(case: Case) -> None:
    assert_agrees(case)


@pytest.mark.parametrize("case", _cases(ERLANG_C + ERLANG_A))
def test_the_engine_serves_in_order_and_never_idles_while_callers_wait(case: Case) -> None:
    """Sample-path check, exact to the millisecond: every answered caller starts when an
    FCFS, work-conserving queue with the same arrivals, handling times and abandons
    would start them, and nobody abandons after the moment FCFS would have served them.
    So whatever gap remains between the figures and the formulas is the randomness of
    the simulated inputs, not the engine."""
    out = simulated(case)
    starts, late = fcfs_starts(out, case.agents)
    engine_starts = np.where(out.answered, out.arrival_ms + out.wait_ms, -1)
    assert np.array_equal(starts, engine_starts), np.flatnonzero(starts != engine_starts)[:10]
    assert late == 0
    # and it can fail: with one agent fewer, the same inputs wait longer
    fewer, _ = fcfs_starts(out, case.agents - 1)
    assert not np.array_equal(fewer, engine_starts)


@pytest.mark.parametrize("case", [ERLANG_C[1], ERLANG_A[0]], ids=lambda c: c.name)
def test_the_comparison_can_fail(case: Case) -> None:
    """Power: the same logs against the formulas for one agent fewer are rejected."""
    out = measured(case)
    rows = compare(case, out, agents=case.agents - 1)
    print(report(case, out, rows))
    assert not any(row.ok for row in rows), report(case, out, rows)


# --- slow: longer runs, tighter intervals, harder loads -----------------------------------

SLOW_ERLANG_C = [
    Case("light-long", per_hour=42, handle_s=240, agents=4, patience_s=None, hours=3000, seed=2),
    Case("medium-long", per_hour=102, handle_s=300, agents=10, patience_s=None, hours=1500, seed=2),
    Case("heavy-long", per_hour=570, handle_s=180, agents=30, patience_s=None, hours=700, seed=2),
    Case("heavy-small", per_hour=114, handle_s=300, agents=10, patience_s=None, hours=3000, seed=2),
    Case("big", per_hour=5400, handle_s=60, agents=95, patience_s=None, hours=40, seed=2),
]
SLOW_ERLANG_A = [
    Case(
        "impatient-long", per_hour=110, handle_s=300, agents=10, patience_s=200, hours=1500, seed=2
    ),
    Case(
        "overloaded-long", per_hour=780, handle_s=240, agents=50, patience_s=120, hours=400, seed=2
    ),
    Case("patient", per_hour=118, handle_s=300, agents=10, patience_s=1800, hours=1500, seed=2),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_ERLANG_C, ids=lambda c: c.name)
def test_long_simulated_m_m_n_matches_erlang_c(case: Case) -> None:
    assert_agrees(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_ERLANG_A, ids=lambda c: c.name)
def test_long_simulated_m_m_n_m_matches_erlang_a(case: Case) -> None:
    assert_agrees(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_ERLANG_C + SLOW_ERLANG_A, ids=lambda c: c.name)
def test_long_runs_serve_in_order_and_never_idle_while_callers_wait(case: Case) -> None:
    test_the_engine_serves_in_order_and_never_idles_while_callers_wait(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", [SLOW_ERLANG_C[1], SLOW_ERLANG_A[0]], ids=lambda c: c.name)
def test_long_runs_reject_a_five_percent_handle_time_error(case: Case) -> None:
    out = measured(case)
    rows = compare(case, out, handle_s=case.handle_s * 1.05)
    print(report(case, out, rows))
    assert not all(row.ok for row in rows), report(case, out, rows)
