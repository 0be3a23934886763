"""The floor the simulator's parts share: the clock and its agenda, the engine, the log.

Customers, agents and bots plan actions on one agenda (a heap ordered by time, then by
when they were planned), send their inputs through :meth:`Floor.emit` (the engine
decides, the input and its decisions go to the log, the decisions come back to the
parts) and read the engine's state to check that a planned action still makes sense.
:class:`SimulationRun` counts what happened.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ..events import Channel, Decision, Event, Input
from ..state import AgentState, ConversationState
from .arrivals import ContactPlan
from .scenario import AgentGroup, Scenario

if TYPE_CHECKING:
    from .. import Engine
    from ..log import EventLog

__all__ = ["Action", "Floor", "SimulationRun"]

Action: TypeAlias = Callable[[int], None]
"""A planned action, called with the event time at which it happens."""


@dataclass
class SimulationRun:
    """What :func:`simulate` did. The figures worth reporting come from the log."""

    scenario: str
    seed: int
    inputs: int = 0
    decisions: int = 0
    ticks: int = 0
    interactions: int = 0
    """Contacts that arrived (backlog, switches and follow-ups included)."""
    switches: int = 0
    """Contacts the scenario's customers made on another channel (``switch``)."""
    rejoins: int = 0
    """Contacts the engine joined to the customer's open conversation as a new leg."""
    legs_joined: int = 0
    """New legs taken on by the agent serving the conversation (``LegJoined``)."""
    legs_waited: int = 0
    """New legs that made the conversation wait (its agent had no room for them)."""
    legs_ended: int = 0
    """Legs that ended while the conversation went on (the call hung up, the chat went on)."""
    follow_ups: int = 0
    abandons: int = 0
    callbacks: int = 0
    transfers: int = 0
    handoffs: int = 0
    bot_resolved: int = 0
    rejected: int = 0
    stale_actions: int = 0
    """Planned inputs dropped because they no longer made sense (the offer was gone...)."""
    first_ts: int = 0
    last_ts: int = 0
    open_at_end: int = 0
    """Conversations still open when the run stopped (``drain_minutes`` after arrivals)."""

    @property
    def events(self) -> int:
        """Events written to the log: inputs and the decisions they caused."""
        return self.inputs + self.decisions


class Floor:
    """The agenda, the engine and the log, and what the simulator's parts share.

    ``react`` is called with every decision the engine makes. ``rng`` is the random
    stream of everyone's reactions (the arrivals have their own). ``plans`` holds the
    contacts still in play by conversation id; ``legs`` the live legs of each open
    conversation (leg id: channel), as the inputs sent and the decisions made them;
    ``holder`` the assignment being played for a conversation (agent, generation);
    ``groups`` each agent's group.
    """

    def __init__(
        self,
        scenario: Scenario,
        engine: Engine,
        log: EventLog,
        seed: int,
        run: SimulationRun,
        react: Callable[[Decision], None],
        batch: int = 4096,
    ) -> None:
        self.scenario = scenario
        self.engine = engine
        self.log = log
        self.seed = seed
        self.run = run
        self.react = react
        self.batch = batch
        self.tenant = scenario.tenant
        self.rng = random.Random(f"omniroute-sim:{seed}:desk")  # its name seeds every log
        self.now = scenario.start_ms
        self.agenda: list[tuple[int, int, Action]] = []
        self.plans: dict[str, ContactPlan] = {}
        self.legs: dict[str, dict[str, Channel]] = {}
        self.holder: dict[str, tuple[str, int]] = {}
        self.groups: dict[str, AgentGroup] = {}
        self._seq = itertools.count()
        self._buffer: list[Event] = []

    def at(self, ts: int, action: Action) -> None:
        """Plan ``action`` for ``ts`` (now, if ``ts`` has passed)."""
        heapq.heappush(self.agenda, (max(ts, self.now), next(self._seq), action))

    def emit(self, event: Input) -> list[Decision]:
        """Send an input to the engine, log it with its decisions, react to them; the
        decisions."""
        decisions = self.engine.apply(event)
        self._buffer.append(event)
        self._buffer.extend(decisions)
        self.run.inputs += 1
        self.run.decisions += len(decisions)
        if len(self._buffer) >= self.batch:
            self.flush()
        for decision in decisions:
            self.react(decision)
        return decisions

    def flush(self) -> None:
        """Append what was emitted since the last flush to the log."""
        if self._buffer:
            self.log.append(self._buffer)
            self._buffer = []

    def conv(self, cid: str) -> ConversationState | None:
        """The engine's state of a conversation (``cid`` may be an alias of it)."""
        tenant = self.engine.tenant(self.tenant)
        if tenant is None:
            return None
        return tenant.conversations.get(tenant.aliases.get(cid, cid))

    def agent(self, agent_id: str) -> AgentState | None:
        """The engine's state of an agent."""
        tenant = self.engine.tenant(self.tenant)
        return tenant.agents.get(agent_id) if tenant is not None else None

    def holds(self, cid: str, agent_id: str, gen: int) -> ConversationState | None:
        """The conversation, if this assignment is still the agent's current work."""
        conv = self.conv(cid)
        if (
            self.holder.get(cid) != (agent_id, gen)
            or conv is None
            or conv.owner != agent_id
            or conv.stage != "assigned"
            or conv.in_queue
            or conv.offer_agent is not None
        ):
            self.run.stale_actions += 1
            return None
        return conv

    def open_conversations(self) -> int:
        """How many conversations the engine still has open."""
        tenant = self.engine.tenant(self.tenant)
        return 0 if tenant is None else len(tenant.conversations)
