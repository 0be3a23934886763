"""The protocols between the service's parts, named once: what a tenant's worker may use
of the running service (:class:`Host`), and what the writer may use of its tenant's
worker (:class:`Tenant`). Imports point one way: ``service`` -> ``worker`` -> ``writer``
-> these protocols; the objects behind them satisfy them structurally.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from omniroute.engine.engine import Engine
from omniroute.engine.policy import Policy

from ..nats.asynclog import AsyncNatsLog
from ..nats.options import Subjects
from .config import ServiceConfig
from .health import Health
from .lease import Lease
from .metrics import Metrics
from .snapshots import SnapshotStore

__all__ = ["Host", "Tenant"]


class Host(Protocol):
    """The running service, as its tenants' workers see it."""

    config: ServiceConfig
    policy: Policy
    digest: str
    """The policy's digest: a snapshot taken under another policy is not restored."""
    instance: str
    metrics: Metrics
    health: Health
    """What is being retried now (``degraded``), for ``/health``."""
    snapshots: SnapshotStore
    stopping: asyncio.Event
    hard_stop: bool
    nc: Client | None
    kv: KeyValue | None
    atomic: bool
    """The server supports atomic batch publish."""

    @property
    def nc_checked(self) -> Client: ...

    @property
    def js(self) -> JetStreamContext: ...


class Tenant(Protocol):
    """One tenant's worker, as its writer sees it: the engine and how far it has applied."""

    svc: Host
    tenant: str
    log: AsyncNatsLog
    subjects: Subjects
    engine: Engine
    lease: Lease | None
    role: str
    applied_seq: int
    """Stream sequence of the last log frame applied."""
    applied_end: int
    """Log position after it."""
    in_seq: int
    """The last input sequence the log (as applied) covers."""
    since_snapshot: int

    def leaving(self) -> bool: ...

    async def catch_up(self) -> None: ...

    def snapshot_due(self) -> bool: ...

    async def save_snapshot(self, wait: bool = False) -> None: ...
