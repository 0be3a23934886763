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
    replicas = 1                # 1, 3 or 5: copies on a JetStream cluster
    # placement_cluster = "east"  placement_tags = ["ssd"]   # where all replicas go
    duplicate_window_s = 120
    max_age_s = 0               # 0: keep forever; else >= 86400 (see "Retention" below)
    max_bytes = 0               # 0: no limit; else >= 1 GiB

    [service]
    tenants = ["acme"]          # or ["*"]: every tenant, spread over the live instances
    # max_tenants = 0           # with ["*"]: lead at most this many; 0: no cap
    # instance_bucket = "omniroute_instances"   # with ["*"]: where instances announce
    policy = "policy.toml"      # relative to this file; default: the built-in policy
    instance = "router-1"       # default: <hostname>-<pid>
    tick_interval_s = 1.0       # how often a Tick is considered; 0: no Ticks
    heartbeat_s = 60            # a Tick when nothing was logged this long; 0: never
    snapshot_every = 50000      # events between snapshots; 0: never
    snapshot_interval_s = 3600  # a snapshot at least this often while the log grows
    snapshots = "objectstore"   # or "file" (with snapshot_dir), or "off"
    lease_ttl_s = 10
    # lease_replicas = 3        # default: stream.replicas (the lease KV bucket)
    # snapshot_replicas = 3     # default: stream.replicas (the snapshot object store)
    max_message_bytes = 1048576 # larger input messages are dead-lettered unread

    [metrics]
    port = 9464                 # Prometheus /metrics and /health (ok or degraded); omit: off
    address = "127.0.0.1"

Ticks move a tenant's clock without traffic, so timers (offer timeouts, rings, SLA
breaches, wrap-ups) fire on time, through the log. Every ``tick_interval_s`` the writer
appends a ``Tick`` only if the tenant's earliest timer is due (``Engine.next_deadline()``
has passed) and no Tick already sent covers it, or if neither an event nor a Tick has been
logged for ``heartbeat_s`` (liveness): an idle tenant logs one Tick per heartbeat, not one
per interval. A timer fires at most ``tick_interval_s`` (plus the append) late.

Replication: on a JetStream cluster the stream, the lease bucket and the snapshot store
each keep ``replicas`` copies (1, 3 or 5; R3 survives the loss of one node, R5 of two),
on the servers ``placement_cluster`` / ``placement_tags`` select. At start the service
checks them against the cluster: more than 1 on a server that is not clustered, more
than the cluster has servers, or tags no server has, is a configuration error naming the
key (exit status 2). The buckets' settings apply once they exist (a difference is logged).

Retention: the log is the system of record, so by default nothing expires. With
``max_age_s`` or ``max_bytes`` set, the oldest messages are dropped, and a restart needs
the log frame its snapshot names. So retention requires snapshots (not ``"off"``),
``snapshot_interval_s`` > 0, ``tick_interval_s`` > 0 and ``heartbeat_s`` > 0 (an idle
tenant still logs, and so snapshots), ``max_age_s`` >= 86400 and >= 2 x
``snapshot_interval_s``, and ``max_bytes`` >= 1 GiB sized to hold more than
``snapshot_interval_s`` of every tenant's traffic. A tenant whose snapshot's frame was
dropped anyway (its writers down longer than ``max_age_s - snapshot_interval_s``) stops
the service with an error that says so rather than rebuilding a wrong state.

Spread: ``tenants = ["*"]`` serves every tenant on the stream, each led by one of the live
instances (about 1/N each, at most ``max_tenants`` here; see :mod:`.spread`); a fixed
list makes this instance a writer or hot standby of each tenant listed. ``max_tenants``
(>= 0) needs ``["*"]``, and ``"*"`` stands alone; the instance's name is then a key of
``instance_bucket`` (A-Z a-z 0-9 _ - = .).

Unknown keys are errors (a typo is not a silent default). Relative paths (policy,
snapshot_dir, TLS and credentials files) are relative to the configuration file.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from ..nats.options import REPLICAS, NatsOptions, StreamOptions, valid_tenant

__all__ = [
    "MIN_RETENTION_BYTES",
    "MIN_RETENTION_S",
    "ConfigError",
    "MetricsOptions",
    "ServiceConfig",
    "ServiceOptions",
    "load_config",
    "parse_config",
]


MIN_RETENTION_S = 86_400.0
"""The least ``stream.max_age_s`` (other than 0, no limit): one day."""
MIN_RETENTION_BYTES = 1 << 30
"""The least ``stream.max_bytes`` (other than 0, no limit): 1 GiB."""


_KV_KEY = re.compile(r"^[-_=A-Za-z0-9][-_=.A-Za-z0-9]*$")


class ConfigError(ValueError):
    """The configuration file is wrong; the message names the key."""


class ServiceOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What ``omniroute serve`` does (TOML table ``[service]``)."""

    tenants: tuple[str, ...] = ()
    """The tenants this instance serves (a hot standby for each whose lease another
    holds), or ``["*"]``: every tenant on the stream, spread over the live instances
    (:mod:`.spread`)."""
    max_tenants: int = 0
    """With ``tenants = ["*"]``: lead at most this many tenants; 0: no cap."""
    instance_bucket: str = "omniroute_instances"
    """With ``tenants = ["*"]``: the KV bucket where live instances announce themselves."""
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
    snapshot_interval_s: float = 3600.0
    """A snapshot at least this often while the tenant's log grows; 0: by count only."""
    snapshots: Literal["objectstore", "file", "off"] = "objectstore"
    snapshot_dir: str | None = None
    snapshot_bucket: str = "omniroute_snapshots"
    lease_bucket: str = "omniroute_leases"
    lease_ttl_s: float = 10.0
    """A dead writer's tenants are taken over within it. On a JetStream cluster keep it
    above the leader election time (about 5 s): a shorter lease lapses whenever the lease
    bucket's leader is lost, and each such loss costs a hand-over."""
    lease_replicas: int | None = None
    """Copies of the lease KV bucket (1, 3 or 5); default: ``stream.replicas``."""
    snapshot_replicas: int | None = None
    """Copies of the snapshot object store (1, 3 or 5); default: ``stream.replicas``."""
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
        if "*" in self.tenants and len(self.tenants) > 1:
            raise ValueError('tenants: "*" (every tenant) stands alone')
        if self.max_tenants < 0:
            raise ValueError(f"max_tenants must be >= 0, got {self.max_tenants}")
        if self.max_tenants and not self.spread:
            raise ValueError('max_tenants needs tenants = ["*"]; a fixed list is served whole')
        if self.spread and self.instance is not None and not _KV_KEY.match(self.instance):
            raise ValueError(f"instance {self.instance!r}: use A-Z a-z 0-9 _ - = . with "
                             'tenants = ["*"] (it is a key in instance_bucket)')  # fmt: skip
        for tenant in self.named_tenants:
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
        if self.snapshot_interval_s < 0:
            raise ValueError(f"snapshot_interval_s must be >= 0, got {self.snapshot_interval_s}")
        for key, replicas in (("lease_replicas", self.lease_replicas),
                              ("snapshot_replicas", self.snapshot_replicas)):  # fmt: skip
            if replicas is not None and replicas not in REPLICAS:
                raise ValueError(f"{key} must be 1, 3 or 5, got {replicas}")
        if self.snapshots == "file" and not self.snapshot_dir:
            raise ValueError('snapshots = "file" needs snapshot_dir')
        if self.fetch_batch < 1:
            raise ValueError(f"fetch_batch must be >= 1, got {self.fetch_batch}")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes must be >= 1024, got {self.max_message_bytes}")

    @property
    def instance_name(self) -> str:
        return self.instance or f"{socket.gethostname()}-{os.getpid()}"

    @property
    def spread(self) -> bool:
        """``tenants = ["*"]``: every tenant, spread over the live instances."""
        return self.tenants == ("*",)

    @property
    def named_tenants(self) -> tuple[str, ...]:
        """The tenants listed (none with ``"*"``)."""
        return () if self.spread else self.tenants


class MetricsOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The Prometheus endpoint (TOML table ``[metrics]``); no ``port``, no endpoint."""

    port: int | None = None
    address: str = "127.0.0.1"
    interval_s: float = 2.0
    """How often the per-class queue depth and available-agent gauges are recomputed."""


class ServiceConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file; checks what spans its tables (retention, see the module docstring)."""

    nats: NatsOptions = NatsOptions()
    stream: StreamOptions = StreamOptions()
    service: ServiceOptions = ServiceOptions()
    metrics: MetricsOptions = MetricsOptions()

    def __post_init__(self) -> None:
        stream, svc = self.stream, self.service
        if not (stream.max_age_s or stream.max_bytes):
            return
        why = "the log drops old frames (stream.max_age_s / max_bytes), so a restart needs"
        if svc.snapshots == "off":
            raise ValueError(f'{why} a snapshot: snapshots = "off" is not allowed with them')
        if not (svc.snapshot_interval_s and svc.tick_interval_s and svc.heartbeat_s):
            raise ValueError(
                f"{why} a recent snapshot: snapshot_interval_s, tick_interval_s and "
                "heartbeat_s must be > 0 with them"
            )
        if stream.max_age_s and stream.max_age_s < max(MIN_RETENTION_S,
                                                       2 * svc.snapshot_interval_s):  # fmt: skip
            raise ValueError(
                f"stream.max_age_s = {stream.max_age_s:g} is too short: 0 (keep forever) or "
                f">= {MIN_RETENTION_S:g} and >= 2 x snapshot_interval_s "
                f"({2 * svc.snapshot_interval_s:g}), so a restart finds its snapshot's frame"
            )
        if stream.max_bytes and stream.max_bytes < MIN_RETENTION_BYTES:
            raise ValueError(
                f"stream.max_bytes = {stream.max_bytes} is too small: 0 (no limit) or >= "
                f"{MIN_RETENTION_BYTES} (1 GiB), so a restart finds its snapshot's frame"
            )

    @property
    def lease_replicas(self) -> int:
        """Copies of the lease bucket (``service.lease_replicas``, else the stream's)."""
        return self.service.lease_replicas or self.stream.replicas

    @property
    def snapshot_replicas(self) -> int:
        """Copies of the snapshot store (``service.snapshot_replicas``, else the stream's)."""
        return self.service.snapshot_replicas or self.stream.replicas

    def replicas(self) -> dict[str, int]:
        """Each replicated thing's setting name -> its replicas (checked at start)."""
        wanted = {"stream.replicas": self.stream.replicas,
                  "service.lease_replicas": self.lease_replicas}  # fmt: skip
        if self.service.snapshots == "objectstore":
            wanted["service.snapshot_replicas"] = self.snapshot_replicas
        return wanted


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
