"""The simulation loop: time moves from event to event, and :func:`simulate` runs it.

A ``Tick`` is sent at each engine timer's deadline (:meth:`Engine.next_deadline`),
before anything else that happens at that time, so timers fire exactly on time (a
service ticking every second fires them up to a second late) and the customers,
agents and bots always read current state before they act. The engine's decisions
are passed to the part of the floor they concern.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

from .. import Engine
from ..events import (
    AgentNotResponding,
    ConversationAssigned,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    Decision,
    EventRejected,
    LegJoined,
    OfferExpired,
    Tick,
)
from ..policy import Policy
from .agents import Agents
from .arrivals import arrivals
from .bots import Bots
from .customers import Customers
from .floor import Floor, SimulationRun
from .loading import check_scenario_policy, scenario_policy
from .scenario import Scenario, ScenarioError
from .shifts import Shifts

if TYPE_CHECKING:
    from ..log import EventLog

__all__ = ["Progress", "simulate"]

_log = logging.getLogger(__name__)

Progress: TypeAlias = Callable[[int, int], None]
"""Called now and then with (event time simulated so far, total) in milliseconds."""


class _Simulation:
    """The floor and everyone on it, wired together, and the loop that plays them."""

    def __init__(
        self, scenario: Scenario, engine: Engine, log: EventLog, seed: int, run: SimulationRun
    ) -> None:
        self.floor = Floor(scenario, engine, log, seed, run, self.react)
        self.customers = Customers(self.floor)
        self.shifts = Shifts(self.floor)
        self.agents = Agents(self.floor, self.customers, Bots(self.floor, self.customers))

    def react(self, decision: Decision) -> None:
        match decision:
            case ConversationOffered():
                self.agents.offered(decision)
            case ConversationAssigned():
                self.agents.assigned(decision)
            case OfferExpired():
                self.agents.expired(decision.conversation_id)
            case AgentNotResponding():
                self.shifts.not_responding(decision)
            case ConversationRejoined():
                self.customers.rejoined(
                    decision.new_conversation_id, decision.conversation_id, decision.channel
                )
            case LegJoined():
                self.agents.leg_joined(decision)
            case ConversationQueued() if decision.reason in ("agent_offline", "agent_removed"):
                self.agents.unheld(decision.conversation_id, decision.ts)
            case ConversationQueued() if decision.leg is not None:
                self.floor.run.legs_waited += 1
            case EventRejected():
                self.floor.run.rejected += 1
                _log.warning("the engine rejected a simulated input: %s", decision.reason)
            case _:
                pass

    def play(self, progress: Progress | None) -> None:
        f = self.floor
        sc = f.scenario
        start, end = sc.start_ms, sc.end_ms
        hard_stop = end + round(sc.drain_minutes * 60_000)
        self.shifts.roster()
        coming = heapq.merge(
            *(arrivals(sc, stream, f.seed) for stream in sc.traffic),
            key=lambda p: (p.ts, p.cid),
        )
        next_arrival = next(coming, None)
        report_every, next_report = max(60_000, (hard_stop - start) // 200), start
        never = hard_stop + 1
        agenda = f.agenda
        while True:
            due = f.engine.next_deadline()
            tick = never if due is None else due
            action = agenda[0][0] if agenda else never
            arrival = next_arrival.ts if next_arrival is not None else never
            ts = min(tick, action, arrival)
            if ts > hard_stop or (
                ts > end and next_arrival is None and f.open_conversations() == 0
            ):
                break
            f.now = ts
            if progress is not None and ts >= next_report:
                progress(ts - start, hard_stop - start)
                next_report = ts + report_every
            if tick <= min(action, arrival):  # timers first, so everyone reads current state
                f.run.ticks += 1
                f.emit(Tick(tenant=f.tenant, ts=ts))
            elif next_arrival is not None and arrival <= action:
                self.customers.arrive(next_arrival)
                next_arrival = next(coming, None)
            else:
                heapq.heappop(agenda)[2](ts)
        f.flush()
        f.run.last_ts = f.now
        f.run.open_at_end = f.open_conversations()


def simulate(
    scenario: Scenario,
    log: EventLog,
    *,
    policy: Policy | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> SimulationRun:
    """Play ``scenario`` through a new engine into ``log`` (which should be empty).

    ``policy`` defaults to the scenario's inline policy (a policy *file* named by the
    scenario is read by :func:`scenario_policy`); ``seed`` to the scenario's.
    Raises ``ScenarioError`` if the scenario needs a queue or profile the policy lacks.
    """
    if policy is None:
        if isinstance(scenario.policy, str):
            raise ScenarioError("policy: the scenario names a file; pass scenario_policy()")
        policy = scenario_policy(scenario)
    check_scenario_policy(scenario, policy)
    seed = scenario.seed if seed is None else seed
    run = SimulationRun(scenario=scenario.name, seed=seed, first_ts=scenario.start_ms)
    _Simulation(scenario, Engine(policy), log, seed, run).play(progress)
    _log.info(
        "simulated %s: %d interactions, %d events, %d stale actions dropped",
        scenario.name, run.interactions, run.events, run.stale_actions,
    )  # fmt: skip
    return run
