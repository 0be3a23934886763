"""A tiny scripted contact centre for rule tests: named helpers that build input events."""

from __future__ import annotations

from typing import Any

from omniroute.engine import Engine, Policy, parse_policy
from omniroute.engine.events import (
    AgentRegistered,
    AgentStatusChanged,
    Contact,
    ConversationArrived,
    Decision,
    Event,
    Tick,
)


class Desk:
    """Drives one engine for one tenant; every helper returns the decisions it caused."""

    def __init__(self, policy: Policy | str | None = None, tenant: str = "acme") -> None:
        if isinstance(policy, str):
            policy = parse_policy(policy)
        self.engine = Engine(policy)
        self.tenant = tenant
        self.now = 0
        self.log: list[Decision] = []

    def at(self, seconds: float) -> Desk:
        self.now = round(seconds * 1000)
        return self

    def send(self, event_type: type[Any], **fields: Any) -> list[Decision]:
        fields.setdefault("tenant", self.tenant)
        fields.setdefault("ts", self.now)
        event: Event = event_type(**fields)
        out = self.engine.apply(event)
        self.log.extend(out)
        return out

    def agent(
        self, agent_id: str, skills: dict[str, int] | None = None, available: bool = True,
        **fields: Any,
    ) -> None:  # fmt: skip
        self.send(AgentRegistered, agent_id=agent_id, skills=skills or {}, **fields)
        if available:
            self.send(AgentStatusChanged, agent_id=agent_id, status="available")

    def arrive(
        self, conversation_id: str, channel: str = "voice", address: str | None = None,
        **fields: Any,
    ) -> list[Decision]:  # fmt: skip
        contact = Contact(channel, address or f"addr-{conversation_id}")  # type: ignore[arg-type]
        return self.send(
            ConversationArrived, conversation_id=conversation_id, channel=channel,
            contact=contact, **fields,
        )  # fmt: skip

    def tick(self, seconds: float) -> list[Decision]:
        self.at(seconds)
        return self.send(Tick)

    def conv(self, conversation_id: str) -> Any:
        tenant = self.engine.state.tenants[self.tenant]
        cid = tenant.aliases.get(conversation_id, conversation_id)
        return tenant.conversations.get(cid)

    def agent_state(self, agent_id: str) -> Any:
        return self.engine.state.tenants[self.tenant].agents[agent_id]


def kinds(decisions: list[Decision]) -> list[str]:
    """The ``type`` tags of decisions, for compact assertions."""
    return [type(d).__struct_config__.tag for d in decisions]  # type: ignore[misc]


def of_type(decisions: list[Decision], event_type: type[Any]) -> list[Any]:
    return [d for d in decisions if isinstance(d, event_type)]
