"""What every request handler shares: :class:`Gateway`, built once from the configuration."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from omniroute.engine.events import AgentRegistered, Input

from ..channels.inbound import Item
from .backend import Backend
from .config import SIGNED, AgentLogin, ConfigError, GatewayConfig, Source
from .intake import inputs_for, outcome_of
from .limits import RateLimiter
from .metrics import GatewayMetrics
from .routing import RoutingTable

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Gateway"]


@dataclass
class Gateway:
    """The configuration, the backend and the metrics one gateway process runs with."""

    config: GatewayConfig
    backend: Backend
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    secrets: dict[tuple[str, str], bytes | None] = field(init=False)
    """(provider, source name) -> its secret, read once (the environment's too)."""
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Token sha256 hex digest -> (tenant, agent id)."""

    def __post_init__(self) -> None:
        self.table = RoutingTable(self.config.route)
        self.sources: Mapping[tuple[str, str], Source] = {
            (s.provider, s.name): s for s in self.config.source
        }
        self.secrets = {key: s.secret_bytes() for key, s in self.sources.items()}
        for (provider, name), secret in self.secrets.items():
            if provider in SIGNED and not secret:
                raise ConfigError(f"source {provider}/{name}: {provider} signs its webhooks; "
                                  "give its secret (secret or secret_env)")  # fmt: skip
        if not self.logins:
            self.logins = self.config.logins()
        opts = self.config.gateway
        self.limiter = RateLimiter(opts.rate_per_s, opts.rate_burst)

    async def register_agents(self) -> int:
        """Register the ``[[agent]] register = true`` logins the engine does not know yet;
        how many."""
        count = 0
        for login in self.config.agent:
            tenant = login.tenant or self.config.gateway.tenant
            state = self.backend.engine.state.tenants.get(tenant)
            if not login.register or (state is not None and login.agent_id in state.agents):
                continue

            def make(now: int, login: AgentLogin = login, tenant: str = tenant) -> list[Input]:
                return [
                    AgentRegistered(
                        tenant=tenant, ts=now, agent_id=login.agent_id, kind=login.kind,
                        skills=dict(login.skills), capacity_profile=login.capacity_profile,
                        languages=list(login.languages),
                    )
                ]  # fmt: skip

            await self.backend.submit(tenant, make)
            count += 1
        return count

    async def ingest(self, source: Source, items: list[Item]) -> tuple[list[Input], Counter[str]]:
        """The inputs ``items`` from ``source`` mean, durable on return, and what became of
        each item (counted in the metrics)."""
        tenant = self.config.tenant_of(source)
        outcomes: Counter[str] = Counter()

        def make(now: int) -> list[Input]:
            outcomes.clear()
            inputs: list[Input] = []
            for item in items:
                made = inputs_for(item, source, tenant, now, self.backend.view, self.table)
                self.backend.view.expect(tenant, made)  # the next item sees them
                outcomes[outcome_of(item, made)] += 1
                inputs += made
            return inputs

        started = time.perf_counter()
        inputs = await self.backend.submit(tenant, make)
        self.metrics.publish.observe(time.perf_counter() - started)
        for outcome, n in outcomes.items():
            self.metrics.items.labels(source.provider, outcome).inc(n)
        return inputs, outcomes
