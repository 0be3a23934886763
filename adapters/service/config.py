"""The ``omniroute serve`` / ``send`` / ``tail`` configuration file (TOML).

Example (every key is optional except ``service.tenants`` for ``serve``)::

    [nats]
    servers = ["nats://127.0.0.1:4222"]   # NATS_URL overrides (comma-separated)
    # user = "omniroute"  password = "..."  # or: token = "..."
    # creds = "/etc/omniroute/omniroute.creds"   # NATS_CREDS overrides
    # tls_ca = "ca.pem"  tls_cert = "client.pem"  tls_key = "client-key.pem"

    [stream]
    name = "OMNIROUTE"
    prefix = "omniroute"        # subjects omniroute.<tenant>.in / .out / .rejected / .dead
    storage = "file"            # or "memory"
    replicas = 1
    duplicate_window_s = 120
    max_age_s = 0               # 0: keep forever

    [service]
    tenants = ["acme"]
    policy = "policy.toml"      # relative to this file; default: the built-in policy
    instance = "router-1"       # default: <hostname>-<pid>
    tick_interval_s = 1.0       # how often a Tick is considered; 0: no Ticks
    heartbeat_s = 60            # a Tick when nothing was logged this long; 0: never
    snapshot_every = 50000      # events between snapshots; 0: never
    snapshots = "objectstore"   # or "file" (with snapshot_dir), or "off"
    lease_ttl_s = 10
    max_message_bytes = 1048576 # larger input messages are dead-lettered unread

    [metrics]
    port = 9464                 # Prometheus /metrics; omit to disable
    address = "127.0.0.1"

Ticks move a tenant's clock without traffic, so timers (offer timeouts, rings, SLA
breaches, wrap-ups) fire on time, through the log. Every ``tick_interval_s`` the writer
appends a ``Tick`` only if the tenant's earliest timer is due (``Engine.next_deadline()``
has passed) and no Tick already sent covers it, or if neither an event nor a Tick has been
logged for ``heartbeat_s`` (liveness): an idle tenant logs one Tick per heartbeat, not one
per interval. A timer fires at most ``tick_interval_s`` (plus the append) late.

Unknown keys are errors (a typo is not a silent default). Relative paths (policy,
snapshot_dir, TLS and credentials files) are relative to the configuration file.
"""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from ..nats.options import NatsOptions, StreamOptions, valid_tenant

__all__ = [
    "ConfigError",
    "MetricsOptions",
    "ServiceConfig",
    "ServiceOptions",
    "load_config",
    "parse_config",
]


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the key."""


class ServiceOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``omniroute serve`` does (TOML table ``[service]``)."""

    tenants: tuple[str, ...] = ()
    policy: str | None = None
    instance: str | None = None
    """This process's name in leases and frame headers. A restarted process with the same
    name takes its own lease back at once; a new name waits for the lease to expire."""
    tick_interval_s: float = 1.0
    """How often the writer checks whether a ``Tick`` is due (a timer's deadline has
    passed, or the heartbeat); 0: never a Tick (the producers' events move the clock)."""
    heartbeat_s: float = 60.0
    """A ``Tick`` when the tenant has logged nothing (no event, no Tick) for this long, so
    the log shows the service alive; 0: Ticks only when a timer is due."""
    snapshot_every: int = 50_000
    snapshots: Literal["objectstore", "file", "off"] = "objectstore"
    snapshot_dir: str | None = None
    snapshot_bucket: str = "omniroute_snapshots"
    lease_bucket: str = "omniroute_leases"
    lease_ttl_s: float = 10.0
    fetch_batch: int = 256
    """Input messages fetched at once (each may hold many events)."""
    append_messages: int = 0
    """At most this many input messages per log append; 0: all that were fetched."""
    on_mismatch: Literal["stop", "continue"] = "stop"
    """When re-applying the log on start does not reproduce a recorded decision (a policy
    or engine change): stop with an error, or log it and go on with the recomputed state."""
    drain_timeout_s: float = 10.0
    max_message_bytes: int = 1024 * 1024
    """Larger input messages are dead-lettered unread (``P.T.dead``, with the reason)."""

    def __post_init__(self) -> None:
        for tenant in self.tenants:
            if not valid_tenant(tenant):
                raise ValueError(f"tenant {tenant!r}: use 1-64 of A-Z a-z 0-9 _ -")
        if len(set(self.tenants)) != len(self.tenants):
            raise ValueError("tenants: a tenant is listed twice")
        if self.lease_ttl_s < 0.5:
            raise ValueError(f"lease_ttl_s must be >= 0.5, got {self.lease_ttl_s}")
        if self.tick_interval_s < 0:
            raise ValueError(f"tick_interval_s must be >= 0, got {self.tick_interval_s}")
        if not 0 <= self.heartbeat_s <= 86_400:
            raise ValueError(f"heartbeat_s must be 0..86400, got {self.heartbeat_s}")
        if self.snapshot_every < 0:
            raise ValueError(f"snapshot_every must be >= 0, got {self.snapshot_every}")
        if self.snapshots == "file" and not self.snapshot_dir:
            raise ValueError('snapshots = "file" needs snapshot_dir')
        if self.fetch_batch < 1:
            raise ValueError(f"fetch_batch must be >= 1, got {self.fetch_batch}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")

    @property
    def instance_name(self) -> str:
        return self.instance or f"{socket.gethostname()}-{os.getpid()}"


class MetricsOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Prometheus endpoint (TOML table ``[metrics]``); no ``port``, no endpoint."""

    port: int | None = None
    address: str = "127.0.0.1"
    interval_s: float = 2.0
    """How often the per-class queue depth and available-agent gauges are recomputed."""


class ServiceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    nats: NatsOptions = NatsOptions()
    stream: StreamOptions = StreamOptions()
    service: ServiceOptions = ServiceOptions()
    metrics: MetricsOptions = MetricsOptions()


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None or value == "":
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_config(
    data: Mapping[str, object], base: Path | None = None, environ: Mapping[str, str] | None = None
) -> ServiceConfig:
    """A configuration from parsed TOML; paths relative to ``base``; the env applied."""
    try:
        config = msgspec.convert(data, ServiceConfig)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"configuration: {exc}") from exc
    base = base or Path.cwd()
    nats = config.nats.with_env(environ)
    nats = msgspec.structs.replace(
        nats,
        creds=_resolve(base, nats.creds),
        tls_ca=_resolve(base, nats.tls_ca),
        tls_cert=_resolve(base, nats.tls_cert),
        tls_key=_resolve(base, nats.tls_key),
    )
    service = msgspec.structs.replace(
        config.service,
        policy=_resolve(base, config.service.policy),
        snapshot_dir=_resolve(base, config.service.snapshot_dir),
    )
    return msgspec.structs.replace(config, nats=nats, service=service)


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> ServiceConfig:
    """Read a configuration file; raises ``ConfigError`` (or ``OSError``)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
    try:
        return parse_config(data, p.parent.resolve(), environ)
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from exc
