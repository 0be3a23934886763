"""What every step of the engine reads and writes, passed explicitly to each step.

The authoritative state (``state.py``), the policy, each tenant's matcher (the
arrays the kernel reads, derived from the state), the decisions the current event
has emitted so far, and the agents and conversations whose routing must be looked at
again before the event is done.
"""

from __future__ import annotations

import heapq

from .events import Decision
from .matching import ProfileTable, TenantMatcher
from .policy import MediaClass, Policy
from .state import AgentState, ConversationState, EngineState, TenantState, Timer, TimerKind

__all__ = ["Context", "ms"]


def ms(seconds: float) -> int:
    """Policy seconds as engine milliseconds."""
    return round(seconds * 1000)


class Context:
    """The state and its derived indexes, with the small operations every step shares."""

    __slots__ = (
        "dirty_agents", "dirty_convs", "matchers", "now", "out", "policy", "profiles", "state",
    )  # fmt: skip

    def __init__(self, policy: Policy, state: EngineState) -> None:
        self.policy = policy
        self.profiles = ProfileTable(policy)
        self.state = state
        self.matchers: dict[str, TenantMatcher] = {}
        self.out: list[Decision] = []
        self.now = 0
        """The current event's tenant's time (epoch ms): what every step reads as now."""
        self.dirty_agents: dict[tuple[str, str], None] = {}
        self.dirty_convs: dict[tuple[str, str], None] = {}
        for name, tenant in state.tenants.items():
            matcher = self.matcher(name)
            for agent in tenant.agents.values():
                matcher.table.sync(agent)
                matcher.agent_at[agent.slot] = agent.agent_id
            for conv in tenant.conversations.values():
                if conv.in_queue:
                    self.index(tenant, conv)

    def emit(self, decision: Decision) -> None:
        self.out.append(decision)

    def next_seq(self) -> int:
        self.state.seq += 1
        return self.state.seq

    def schedule(self, kind: TimerKind, tenant: str, key: str, deadline: int, gen: int) -> None:
        """Set a timer; ``gen`` lets its handler tell whether it went stale meanwhile."""
        timer = Timer(deadline, self.next_seq(), kind, tenant, key, gen)
        heapq.heappush(self.state.tenants[tenant].timers, timer)

    def matcher(self, tenant: str) -> TenantMatcher:
        matcher = self.matchers.get(tenant)
        if matcher is None:
            matcher = TenantMatcher(self.policy, self.profiles)
            self.matchers[tenant] = matcher
        return matcher

    def tenant(self, name: str) -> TenantState:
        """The tenant, created on its first agent, conversation or customer (at ``now``)."""
        tenant = self.state.tenants.get(name)
        if tenant is None:
            tenant = TenantState(tenant=name, clock=self.now)
            self.state.tenants[name] = tenant
            self.matcher(name)
        return tenant

    def limit_cost(self, agent: AgentState, cls: MediaClass) -> int:
        """Units one conversation of ``cls`` costs this agent (0: not in their profile)."""
        limit = self.policy.profiles[agent.profile].classes.get(cls)
        return limit.cost if limit is not None else 0

    def sync(self, tenant: TenantState, agent: AgentState) -> None:
        """Copy the agent into the matcher's table."""
        self.matchers[tenant.tenant].table.sync(agent)

    def dirty_agent(self, tenant: TenantState, agent: AgentState) -> None:
        """The agent may have room for waiting work: look for some before the event ends."""
        self.dirty_agents[(tenant.tenant, agent.agent_id)] = None

    def dirty_conv(self, tenant: TenantState, conv: ConversationState) -> None:
        """Something that decides where a waiting conversation may go changed."""
        if conv.in_queue:
            self.index(tenant, conv)
        self.dirty_convs[(tenant.tenant, conv.conversation_id)] = None

    def index(self, tenant: TenantState, conv: ConversationState) -> None:
        """Put (or refresh) a waiting conversation in the tenant's queue index."""
        pinned = tenant.agents.get(conv.pinned) if conv.pinned is not None else None
        self.matchers[tenant.tenant].enqueue(
            conv, self.excluded_slots(tenant, conv), pinned.slot if pinned else -1,
            conv.pin_until if conv.pin_until is not None else 0,
        )  # fmt: skip

    def excluded_slots(self, tenant: TenantState, conv: ConversationState) -> list[int]:
        """Slots of the agents who may not get it: they declined, lapsed or hold it."""
        if not conv.excluded and conv.owner is None:
            return []
        slots = [tenant.agents[a].slot for a in conv.excluded if a in tenant.agents]
        if conv.owner is not None:
            slots.append(tenant.agents[conv.owner].slot)
        return slots
