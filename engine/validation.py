"""What makes an event acceptable: the checks and look-ups that reject it before any change.

A handler raises :class:`Rejected` before it changes anything; the engine turns it into
one ``EventRejected`` decision carrying the reason.
"""

from __future__ import annotations

from .events import TAGS, Event, EventRejected, is_decision
from .policy import Policy, Queue
from .state import AgentState, ConversationState, EngineState, TenantState

__all__ = [
    "Rejected",
    "agent_of",
    "check_skills",
    "conversation_of",
    "envelope_problem",
    "known_tenant",
    "queue_of",
    "rejection",
]


class Rejected(Exception):
    """Raised inside a handler, before any change, when the event is invalid."""


def envelope_problem(event: Event) -> str | None:
    """Why an event cannot be applied at all (whatever its type), or None."""
    if is_decision(event):
        return "decisions are emitted by the engine, not applied"
    if type(event.ts) is not int or event.ts < 0:
        return f"ts must be a non-negative integer, got {event.ts!r}"
    if not event.tenant:
        return "tenant must not be empty"
    return None


def rejection(event: Event, clock: int, reason: str) -> EventRejected:
    """The decision that reports an invalid event."""
    return EventRejected(
        tenant=event.tenant or "",
        ts=clock,
        reason=reason,
        event_type=TAGS.get(type(event)),
        event_id=event.id,
    )


def check_skills(skills: dict[str, int], what: str = "skills") -> None:
    """Skill names are non-empty and levels integers 1..5."""
    for name, level in skills.items():
        if not name:
            raise Rejected(f"{what}: empty skill name")
        if type(level) is not int or not 1 <= level <= 5:
            raise Rejected(f"{what}.{name}: level must be an integer 1..5, got {level!r}")


def known_tenant(state: EngineState, name: str) -> TenantState:
    tenant = state.tenants.get(name)
    if tenant is None:
        raise Rejected(f"unknown tenant {name!r}")
    return tenant


def agent_of(tenant: TenantState, agent_id: str) -> AgentState:
    agent = tenant.agents.get(agent_id)
    if agent is None:
        raise Rejected(f"unknown agent {agent_id!r}")
    return agent


def conversation_of(tenant: TenantState, conversation_id: str) -> ConversationState:
    """An open conversation, by its id or by the id of a contact that rejoined it."""
    cid = tenant.aliases.get(conversation_id, conversation_id)
    conv = tenant.conversations.get(cid)
    if conv is None:
        raise Rejected(f"unknown or closed conversation {conversation_id!r}")
    return conv


def queue_of(policy: Policy, name: str) -> Queue:
    queue = policy.queues.get(name)
    if queue is None:
        raise Rejected(f"unknown queue {name!r}")
    return queue
