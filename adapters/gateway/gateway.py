"""What every request handler shares: :class:`Gateway`, built once from the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .backend import Backend
from .config import SIGNED, ConfigError, GatewayConfig, Source
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
    secrets: dict[tuple[str, str], bytes | None] = field(default_factory=dict)
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Token sha256 hex digest -> (tenant, agent id)."""

    def __post_init__(self) -> None:
        self.table = RoutingTable(self.config.route)
        self.sources: Mapping[tuple[str, str], Source] = {
            (s.provider, s.name): s for s in self.config.source
        }
        if not self.secrets:
            self.secrets = {key: s.secret_bytes() for key, s in self.sources.items()}
        for (provider, name), secret in self.secrets.items():
            if provider in SIGNED and not secret:
                raise ConfigError(f"source {provider}/{name}: {provider} signs its webhooks; "
                                  "give its secret (secret or secret_env)")  # fmt: skip
        if not self.logins:
            self.logins = self.config.logins()
        opts = self.config.gateway
        self.limiter = RateLimiter(opts.rate_per_s, opts.rate_burst)
