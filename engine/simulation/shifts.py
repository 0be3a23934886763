"""When agents are at their desks: registration, shifts, breaks, the end of a shift,
and the return to the desk after a missed offer."""

from __future__ import annotations

import math
import random
from typing import Literal

from ..events import AgentNotResponding, AgentRegistered, AgentStatus, AgentStatusChanged
from .floor import Action, Floor
from .scenario import HOUR_MS

__all__ = ["Shifts"]


class Shifts:
    """The scenario's agent groups, logging in and out and taking breaks on the floor."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self._off_shift: set[str] = set()

    def roster(self) -> None:
        """Register every agent (skills drawn per agent) and plan their shift and breaks."""
        f = self.floor
        sc = f.scenario
        rng = random.Random(f"omniroute-sim:{f.seed}:roster")
        start = sc.start_ms
        for group in sc.agents:
            for i in range(group.count):
                agent_id = f"{group.group}-{i + 1:04d}"
                skills: dict[str, int] = {}
                for name, level in group.skills.items():
                    skills[name] = level if isinstance(level, int) else rng.randint(*level)
                if group.random_skills is not None:
                    for name, level in group.random_skills.draw(rng).items():
                        skills.setdefault(name, level)
                f.groups[agent_id] = group
                f.emit(
                    AgentRegistered(
                        tenant=f.tenant, ts=start, agent_id=agent_id, kind=group.kind,
                        skills=skills, capacity_profile=group.profile,
                        languages=list(group.languages),
                    )
                )  # fmt: skip
                on, off = group.shift if group.shift is not None else (0.0, math.inf)
                later = group.stagger_h * i / group.count
                on, off = on + later, off + later
                f.at(start + round(on * HOUR_MS), self._status(agent_id, "available", "shift"))
                if off != math.inf:
                    f.at(start + round(off * HOUR_MS), self._end_shift(agent_id))
                length = (off if off != math.inf else sc.hours) - on
                for b in range(group.breaks):
                    centre = on + length * (b + 1) / (group.breaks + 1)
                    away = start + round((centre + rng.uniform(-0.25, 0.25)) * HOUR_MS)
                    back = away + round(group.break_minutes * 60_000)
                    f.at(away, self._status(agent_id, "away", "break"))
                    f.at(back, self._status(agent_id, "available", "back from break"))

    def not_responding(self, d: AgentNotResponding) -> None:
        """The engine made an agent who missed an offer unavailable: they come back to
        the desk 20 to 90 seconds later."""
        back = d.ts + round(self.floor.rng.uniform(20, 90) * 1000)
        self.floor.at(back, self._back_at_desk(d.agent_id))

    def _set(self, ts: int, agent_id: str, status: AgentStatus, reason: str) -> None:
        f = self.floor
        f.emit(
            AgentStatusChanged(
                tenant=f.tenant, ts=ts, agent_id=agent_id, status=status, reason=reason
            )
        )

    def _status(self, agent_id: str, status: Literal["available", "away"], why: str) -> Action:
        def act(ts: int) -> None:
            if agent_id not in self._off_shift:
                self._set(ts, agent_id, status, why)

        return act

    def _end_shift(self, agent_id: str) -> Action:
        def act(ts: int) -> None:
            if agent_id not in self._off_shift:
                self._off_shift.add(agent_id)
                self._set(ts, agent_id, "away", "end of shift")
            state = self.floor.agent(agent_id)
            if state is not None and state.holding:
                self.floor.at(ts + 60_000, act)  # finish what they hold first
                return
            self._set(ts, agent_id, "offline", "end of shift")

        return act

    def _back_at_desk(self, agent_id: str) -> Action:
        def act(ts: int) -> None:
            agent = self.floor.agent(agent_id)
            if agent is None or agent.status != "available" or agent.responsive:
                return
            self._set(ts, agent_id, "available", "back at the desk after a missed offer")

        return act
