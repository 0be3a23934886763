"""Connecting to NATS and the JetStream stream: ``[nats]`` and ``[stream]`` options.

One stream per deployment (``StreamOptions.name``, default ``OMNIROUTE``) holds, for every
tenant ``T`` and a configurable subject prefix ``P`` (default ``omniroute``):

``P.T.in``
    inputs, published by producers (channels, desktops, ``omniroute send``) and by the
    service's own ``Tick`` timer. Not ordered relative to the decisions.
``P.T.out``
    THE log of tenant ``T``: written by exactly one writer, totally ordered, the one the
    ``EventLog`` interface exposes. ``omniroute serve`` appends each consumed input followed
    by the decisions it caused (the ``FileLog`` demo layout), so the log alone replays.
``P.T.rejected`` / ``P.T.dead``
    ``EventRejected`` for bad input, and the raw bytes of input messages that do not even
    parse (dead letters).

:func:`connect` opens a connection that reconnects forever; :func:`ensure_stream` creates
the stream or aligns an existing one with the options.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import Placement, StorageType, StreamConfig

from omniroute.engine.log import LogError

__all__ = [
    "REFUSALS",
    "REPLICAS",
    "TRANSIENT",
    "NatsOptions",
    "PlacementError",
    "StreamOptions",
    "Subjects",
    "check_replicas",
    "cluster_servers",
    "connect",
    "ensure_stream",
    "placement",
    "refused",
    "valid_tenant",
]

_log = logging.getLogger(__name__)

TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)
"""The transient cluster errors, named once: a request that may succeed when tried again
(no answer, connection lost, no stream leader during an election, JetStream unavailable,
a server-side 500). Every JetStream call of the service retries them
(:mod:`.retry`); anything else is a configuration error or a condition it names."""

REPLICAS = (1, 3, 5)
"""The replica counts a stream, KV bucket or object store may have: an even count
survives no more lost nodes than the odd one below it."""

_ERR_NO_SUITABLE_PEERS = 10005
_ERR_REPLICAS_NOT_CLUSTERED = 10074
REFUSALS = (_ERR_NO_SUITABLE_PEERS, _ERR_REPLICAS_NOT_CLUSTERED)
"""JetStream error codes of a creation refused for its replicas or placement: a
configuration error (:func:`refused`), never retried."""

_TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_tenant(tenant: str) -> bool:
    """Tenants name NATS subject tokens: 1-64 of ``A-Z a-z 0-9 _ -``."""
    return _TENANT_RE.match(tenant) is not None


# --- configuration ------------------------------------------------------------------------


class NatsOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How to connect: servers and credentials (TOML table ``[nats]``).

    Authentication: ``user``/``password``, ``token``, or ``creds`` (a ``.creds`` file with
    a user JWT and nkey seed, as ``nsc`` writes them). TLS: ``tls_ca`` verifies the server,
    ``tls_cert``/``tls_key`` present a client certificate; TLS is used when any of them is
    set or a server URL is ``tls://``. The environment overrides the file:
    ``NATS_URL`` (comma-separated servers) and ``NATS_CREDS`` (see :meth:`with_env`).
    """

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_hostname: str | None = None
    name: str = "omniroute"
    connect_timeout_s: float = 2.0
    reconnect_wait_s: float = 0.5
    max_reconnect_attempts: int = -1
    """-1: keep trying forever (the service must survive a server restart)."""
    request_timeout_s: float = 5.0
    initial_connect_s: float = 10.0
    """How long the first connection may take (reconnects after it never give up)."""

    def with_env(self, environ: Mapping[str, str] | None = None) -> NatsOptions:
        """These options with ``NATS_URL`` and ``NATS_CREDS`` from the environment applied."""
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        if url := env.get("NATS_URL", "").strip():
            changes["servers"] = tuple(s.strip() for s in url.split(",") if s.strip())
        if creds := env.get("NATS_CREDS", "").strip():
            changes["creds"] = creds
        return msgspec.structs.replace(self, **changes) if changes else self

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context these options ask for, or None for plain TCP."""
        wants_tls = any((self.tls_ca, self.tls_cert, self.tls_key)) or any(
            s.startswith("tls://") for s in self.servers
        )
        if not wants_tls:
            return None
        ctx = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca)
        if self.tls_cert:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        return ctx


class StreamOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JetStream stream and subjects (TOML table ``[stream]``); see the module docstring."""

    name: str = "OMNIROUTE"
    prefix: str = "omniroute"
    storage: Literal["file", "memory"] = "file"
    replicas: int = 1
    """Copies of the stream on a JetStream cluster: 1, 3 or 5 (3 survives one node lost,
    5 two); at most the cluster's size (a single server: 1)."""
    placement_cluster: str | None = None
    """The JetStream cluster (by name) to place the stream, lease bucket and snapshots in."""
    placement_tags: tuple[str, ...] = ()
    """Only servers with all these ``server_tags`` hold replicas (of all three)."""
    duplicate_window_s: float = 120.0
    max_age_s: float = 0.0
    """Drop messages older than this; 0 keeps them forever. Keep snapshots newer than it."""
    max_bytes: int = 0
    """Drop the oldest messages (of every tenant) once the stream is larger; 0: no limit."""
    max_frame_bytes: int = 512 * 1024
    """Largest NATS message payload the log writes; bigger appends become atomic batches."""
    create: bool = True
    """Create the stream when it is missing; when False a missing stream is an error."""

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9_-]+$", self.name):
            raise ValueError(f"stream.name {self.name!r}: use letters, digits, '_' and '-'")
        if not re.match(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", self.prefix):
            raise ValueError(f"stream.prefix {self.prefix!r} is not a valid subject prefix")
        if self.replicas not in REPLICAS:
            raise ValueError(f"stream.replicas must be 1, 3 or 5, got {self.replicas}")
        if self.max_age_s < 0 or self.max_bytes < 0:
            raise ValueError("stream.max_age_s and stream.max_bytes must be >= 0 (0: no limit)")
        if self.max_frame_bytes < 1024:
            raise ValueError(f"stream.max_frame_bytes must be >= 1024, got {self.max_frame_bytes}")

    @property
    def duplicate_window(self) -> float:
        """The de-duplication window, no longer than ``max_age_s`` (a server rule)."""
        if self.max_age_s > 0:
            return min(self.duplicate_window_s, self.max_age_s)
        return self.duplicate_window_s

    def subjects(self, tenant: str) -> Subjects:
        return Subjects(self.prefix, tenant)

    def stream_subjects(self) -> list[str]:
        p = self.prefix
        return [f"{p}.*.in", f"{p}.*.out", f"{p}.*.rejected", f"{p}.*.dead"]


@dataclass(frozen=True)
class Subjects:
    """The subjects of one tenant."""

    prefix: str
    tenant: str

    def __post_init__(self) -> None:
        if not valid_tenant(self.tenant):
            raise ValueError(
                f"tenant {self.tenant!r} is not a valid subject token (1-64 of A-Z a-z 0-9 _ -)"
            )

    @property
    def inputs(self) -> str:
        return f"{self.prefix}.{self.tenant}.in"

    @property
    def out(self) -> str:
        return f"{self.prefix}.{self.tenant}.out"

    @property
    def rejected(self) -> str:
        return f"{self.prefix}.{self.tenant}.rejected"

    @property
    def dead(self) -> str:
        return f"{self.prefix}.{self.tenant}.dead"


# --- connecting and the stream --------------------------------------------------------------


async def connect(
    options: NatsOptions,
    *,
    reconnected_cb: Callable[[], Awaitable[None]] | None = None,
    disconnected_cb: Callable[[], Awaitable[None]] | None = None,
) -> Client:
    """Connect with ``options``; reconnects forever unless ``max_reconnect_attempts`` says."""

    errors: list[Exception] = []

    async def _error(exc: Exception) -> None:
        errors.append(exc)
        level = logging.WARNING if len(errors) == 1 else logging.DEBUG
        _log.log(level, "nats: %s", str(exc) or type(exc).__name__)

    async def _disconnected() -> None:
        if not (nc.is_closed or nc.is_draining):
            _log.warning("nats: disconnected")
        if disconnected_cb is not None:
            await disconnected_cb()

    async def _reconnected() -> None:
        errors.clear()
        _log.warning(
            "nats: reconnected to %s", nc.connected_url.netloc if nc.connected_url else "?"
        )
        if reconnected_cb is not None:
            await reconnected_cb()

    kwargs: dict[str, Any] = {}
    if options.user is not None:
        kwargs["user"] = options.user
    if options.password is not None:
        kwargs["password"] = options.password
    if options.token is not None:
        kwargs["token"] = options.token
    if options.creds is not None:
        kwargs["user_credentials"] = options.creds
    tls = options.ssl_context()
    if tls is not None:
        kwargs["tls"] = tls
        if options.tls_hostname:
            kwargs["tls_hostname"] = options.tls_hostname
    nc = Client()
    first = nc.connect(
        servers=list(options.servers),
        name=options.name,
        connect_timeout=options.connect_timeout_s,  # type: ignore[arg-type]
        reconnect_time_wait=options.reconnect_wait_s,  # type: ignore[arg-type]
        max_reconnect_attempts=options.max_reconnect_attempts,
        allow_reconnect=True,
        error_cb=_error,
        disconnected_cb=_disconnected,
        reconnected_cb=_reconnected,
        **kwargs,
    )
    try:
        await asyncio.wait_for(first, options.initial_connect_s)
    except (TimeoutError, Exception) as exc:
        with contextlib.suppress(Exception):
            await nc.close()
        auth = [e for e in errors if "uthoriz" in str(e) or "uthentic" in str(e)]
        why = (auth or errors or [exc])[0]
        raise LogError(
            f"cannot connect to NATS {list(options.servers)}: {str(why) or type(why).__name__}"
        ) from exc
    errors.clear()
    return nc


def placement(options: StreamOptions) -> Placement | None:
    """Where the stream's (and the lease and snapshot buckets') replicas go; None: anywhere."""
    if options.placement_cluster is None and not options.placement_tags:
        return None
    return Placement(cluster=options.placement_cluster, tags=list(options.placement_tags) or None)


def cluster_servers(nc: Client) -> list[str]:
    """The servers of the connected server's cluster it is routed to now (itself included;
    ``[]``: it is not clustered), from the INFO it sent (nats-py keeps it private)."""
    info: dict[str, Any] = getattr(nc, "_server_info", {}) or {}
    if not info.get("cluster"):
        return []
    return sorted(info.get("connect_urls") or [])


def check_replicas(nc: Client, wanted: Mapping[str, int]) -> None:
    """Refuse replica counts the server cannot hold: more than 1 on a server that is not
    clustered (it would refuse each request as a server error, which looks transient).
    A cluster refuses more replicas than it has servers at creation (see
    :func:`refused`). ``wanted``: setting name -> replicas."""
    if cluster_servers(nc):
        return
    for setting, replicas in wanted.items():
        if replicas > 1:
            raise LogError(
                f"{setting} = {replicas}, but the NATS server "
                f"{nc.connected_url.netloc if nc.connected_url else '?'} is not part of a "
                "JetStream cluster: a single server holds 1 replica"
            )


class PlacementError(LogError):
    """The cluster refused the replicas or placement of the stream or a bucket: a
    configuration error, never retried; the message names the setting."""


def refused(exc: nats.js.errors.APIError, setting: str, replicas: int) -> PlacementError:
    """The configuration error for a creation the server refused (``exc``'s code is one of
    :data:`REFUSALS`), naming the setting."""
    if exc.err_code == _ERR_NO_SUITABLE_PEERS:
        return PlacementError(
            f"{setting} = {replicas}: the cluster cannot place it ({exc.description}): "
            "replicas must be at most the cluster's size, and placement tags and cluster "
            "must match servers of the cluster"
        )
    return PlacementError(f"{setting} = {replicas}: {exc.description}")


def _stream_config(options: StreamOptions, allow_atomic: bool) -> StreamConfig:
    return StreamConfig(
        name=options.name,
        subjects=options.stream_subjects(),
        storage=StorageType.FILE if options.storage == "file" else StorageType.MEMORY,
        num_replicas=options.replicas,
        duplicate_window=options.duplicate_window,
        max_age=options.max_age_s,
        max_bytes=options.max_bytes or -1,
        placement=placement(options),
        allow_direct=True,
        allow_atomic=allow_atomic or None,
    )


async def _put_stream(js: JetStreamContext, config: StreamConfig, create: bool) -> bool:
    """Add (or update) the stream, with atomic batches when the server has them; whether it
    has. A refusal of the replicas or placement is a configuration error (``LogError``)."""
    put = js.add_stream if create else js.update_stream
    try:
        try:
            await put(config)
            return True
        except nats.js.errors.BadRequestError as exc:  # a server without atomic batches?
            if exc.err_code in REFUSALS:
                raise
            config.allow_atomic = None
            await put(config)
            return False
    except nats.js.errors.APIError as exc:
        if exc.err_code in REFUSALS:
            raise refused(exc, "stream.replicas", config.num_replicas or 1) from exc
        raise


async def ensure_stream(js: JetStreamContext, options: StreamOptions) -> bool:
    """Create the stream with explicit settings, or check and align an existing one.

    Storage cannot change: a stream with other storage is an error. Subjects, replicas,
    duplicate window, max age, direct get and atomic batches are updated to the options
    (logged). Returns whether atomic batch publishing is available (nats-server >= 2.12).
    """
    try:
        info = await js.stream_info(options.name)
    except nats.js.errors.NotFoundError:
        if not options.create:
            raise LogError(f"JetStream stream {options.name!r} does not exist") from None
        atomic = await _put_stream(js, _stream_config(options, allow_atomic=True), create=True)
        _log.info("created JetStream stream %s (%s)", options.name, options.stream_subjects())
        return atomic
    have = info.config
    want_storage = StorageType.FILE if options.storage == "file" else StorageType.MEMORY
    if have.storage != want_storage:
        raise LogError(
            f"stream {options.name!r} has {have.storage} storage, configured {want_storage}; "
            "storage cannot change: use another stream name"
        )
    wanted = _stream_config(options, allow_atomic=True)
    diffs = []
    if sorted(have.subjects or []) != sorted(wanted.subjects or []):
        diffs.append(f"subjects {have.subjects} -> {wanted.subjects}")
    if (have.num_replicas or 1) != options.replicas:
        diffs.append(f"replicas {have.num_replicas} -> {options.replicas}")
    if abs((have.duplicate_window or 0) - options.duplicate_window) > 1e-6:
        diffs.append(f"duplicate_window {have.duplicate_window} -> {options.duplicate_window}")
    if abs((have.max_age or 0) - options.max_age_s) > 1e-6:
        diffs.append(f"max_age {have.max_age} -> {options.max_age_s}")
    if max(have.max_bytes or -1, -1) != wanted.max_bytes:
        diffs.append(f"max_bytes {have.max_bytes} -> {wanted.max_bytes}")
    if (have.placement or Placement()) != (wanted.placement or Placement()):
        diffs.append(f"placement {have.placement} -> {wanted.placement}")
    if not have.allow_direct:
        diffs.append("allow_direct -> true")
    if not have.allow_atomic:
        diffs.append("allow_atomic -> true")
    if not diffs:
        return True
    if not options.create:
        raise LogError(f"stream {options.name!r} differs from the configuration: {diffs}")
    have.subjects = wanted.subjects
    have.num_replicas = options.replicas
    have.duplicate_window = options.duplicate_window
    have.max_age = options.max_age_s
    have.max_bytes = wanted.max_bytes
    have.placement = wanted.placement
    have.allow_direct = True
    have.allow_atomic = True
    atomic = await _put_stream(js, have, create=False)
    _log.warning("updated JetStream stream %s: %s", options.name, "; ".join(diffs))
    return atomic
