"""``NatsLog``: the ``EventLog`` over NATS JetStream, and the JetStream plumbing the service uses.

Layout. One stream per deployment (``StreamOptions.name``, default ``OMNIROUTE``) holds, for
every tenant ``T`` and a configurable subject prefix ``P`` (default ``omniroute``):

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

Frames. One NATS message holds several events: its payload is a msgpack array whose items
are exactly ``encode_msgpack(event)`` (the ``FileLog`` frame payload), so throughput is not
capped by per-message client cost. Headers make every frame self-describing:
``Omniroute-Pos`` (log position of its first event) and ``Omniroute-Count`` (its events);
the service adds ``Omniroute-In`` (the last ``.in`` stream sequence whose events are in the
log up to this frame) and ``Omniroute-Writer``.

Appends are fenced and idempotent. Every append carries
``Nats-Expected-Last-Subject-Sequence`` = the stream sequence of the last frame this writer
knows on ``.out`` (``0`` for an empty log), so a writer that is behind (a stale writer after
a failover) can never append; the server answers "wrong last sequence" and
:class:`LogConflictError` is raised. Every append also carries a ``Nats-Msg-Id``: when an
acknowledgement is lost and the publish is retried, the server checks the expected sequence
*before* de-duplication, so the retry fails with "wrong last sequence"; the writer then reads
the last frame and, if its ``Nats-Msg-Id`` is its own, the first attempt landed. An append
larger than ``StreamOptions.max_frame_bytes`` is split into several frames published as one
JetStream atomic batch (``allow_atomic``, nats-server >= 2.12), so one ``append`` stays one
atomic batch of the log.

Reading. :class:`Cursor` reads one subject from a stream sequence onwards with an ephemeral
pull consumer (no acks) whose position the cursor owns: when the consumer disappears, the
connection is re-established after a server restart (the known nats-py trap: a pull
subscription does not resume by itself), heartbeats stop or a delivery gap shows up, the
cursor deletes it and creates a new one at its own next sequence. Nothing is lost or
delivered twice.

Sync and async. nats-py is asyncio. The service uses the async pieces (:class:`AsyncNatsLog`,
:class:`Cursor`) on its own loop. :class:`NatsLog` is the synchronous ``EventLog`` facade:
it runs a private event loop in a background thread, owns its connection, keeps an index of
its subject's frames (stream sequence and first position, 16 bytes per frame, built on open
from a headers-only scan) and is used from one thread at a time like every ``EventLog``.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import re
import ssl
import threading
import time
import uuid
from array import array
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)

from omniroute.engine.events import Event
from omniroute.engine.log import CorruptLogError, EventLog, LogError, encode_batch

__all__ = [
    "HEADER_COUNT",
    "HEADER_IN",
    "HEADER_POS",
    "HEADER_WRITER",
    "AsyncNatsLog",
    "Cursor",
    "Frame",
    "LogConflictError",
    "NatsLog",
    "NatsOptions",
    "StreamOptions",
    "Subjects",
    "connect",
    "decode_frame",
    "encode_frame",
    "ensure_stream",
    "valid_tenant",
]

_log = logging.getLogger(__name__)

HEADER_POS = "Omniroute-Pos"
HEADER_COUNT = "Omniroute-Count"
HEADER_IN = "Omniroute-In"
HEADER_WRITER = "Omniroute-Writer"
_MSG_ID = "Nats-Msg-Id"
_EXPECTED_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
_BATCH_ID = "Nats-Batch-Id"
_BATCH_SEQ = "Nats-Batch-Sequence"
_BATCH_COMMIT = "Nats-Batch-Commit"
_ERR_WRONG_LAST_SEQUENCE = 10071
_MAX_ATOMIC_BATCH = 1000  # nats-server's default limit of messages per atomic batch

_TRANSIENT = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
)
_TENANT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_json_decoder = msgspec.json.Decoder()


def valid_tenant(tenant: str) -> bool:
    """Tenants name NATS subject tokens: 1-64 of ``A-Z a-z 0-9 _ -``."""
    return _TENANT_RE.match(tenant) is not None


class LogConflictError(LogError):
    """Another writer appended to the log first: this writer is stale (fenced off).

    Nothing of the failed append was stored. ``tail_seq`` is the stream sequence of the
    log's last frame as the server reported it.
    """

    def __init__(self, message: str, tail_seq: int | None = None) -> None:
        super().__init__(message)
        self.tail_seq = tail_seq


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
    duplicate_window_s: float = 120.0
    max_age_s: float = 0.0
    """Drop messages older than this; 0 keeps them forever. Keep snapshots newer than it."""
    max_frame_bytes: int = 512 * 1024
    """Largest NATS message payload the log writes; bigger appends become atomic batches."""
    create: bool = True
    """Create the stream when it is missing; when False a missing stream is an error."""

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9_-]+$", self.name):
            raise ValueError(f"stream.name {self.name!r}: use letters, digits, '_' and '-'")
        if not re.match(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$", self.prefix):
            raise ValueError(f"stream.prefix {self.prefix!r} is not a valid subject prefix")
        if self.replicas < 1:
            raise ValueError(f"stream.replicas must be >= 1, got {self.replicas}")
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


def _stream_config(options: StreamOptions, allow_atomic: bool) -> StreamConfig:
    return StreamConfig(
        name=options.name,
        subjects=options.stream_subjects(),
        storage=StorageType.FILE if options.storage == "file" else StorageType.MEMORY,
        num_replicas=options.replicas,
        duplicate_window=options.duplicate_window,
        max_age=options.max_age_s,
        allow_direct=True,
        allow_atomic=allow_atomic or None,
    )


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
        try:
            await js.add_stream(_stream_config(options, allow_atomic=True))
            atomic = True
        except nats.js.errors.BadRequestError:  # server without atomic batches
            await js.add_stream(_stream_config(options, allow_atomic=False))
            atomic = False
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
    have.allow_direct = True
    have.allow_atomic = True
    try:
        await js.update_stream(have)
        atomic = True
    except nats.js.errors.BadRequestError:
        have.allow_atomic = None
        await js.update_stream(have)
        atomic = False
    _log.warning("updated JetStream stream %s: %s", options.name, "; ".join(diffs))
    return atomic


# --- frames -----------------------------------------------------------------------------------


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def encode_frame(encoded: Sequence[bytes]) -> bytes:
    """A frame payload: the msgpack array of already encoded events."""
    return b"".join([_array_header(len(encoded)), *encoded])


def decode_frame(payload: bytes | memoryview) -> list[bytes]:
    """The encoded events of a frame payload; raises ``msgspec.DecodeError`` if malformed."""
    return [bytes(r) for r in _raw_list_decoder.decode(payload)]


def _split(encoded: Sequence[bytes], max_bytes: int) -> list[Sequence[bytes]]:
    if sum(map(len, encoded)) + 5 <= max_bytes:
        return [encoded]
    parts: list[list[bytes]] = [[]]
    size = 5
    for data in encoded:
        if len(data) + 5 > max_bytes:
            raise ValueError(f"an event of {len(data)} bytes is larger than a frame may be")
        if parts[-1] and size + len(data) > max_bytes:
            parts.append([])
            size = 5
        parts[-1].append(data)
        size += len(data)
    return list(parts)


@dataclass(frozen=True)
class Frame:
    """One message of a log subject: stream sequence, first position, its events' bytes."""

    seq: int
    pos: int
    count: int
    headers: Mapping[str, str]
    payload: bytes

    @property
    def end(self) -> int:
        return self.pos + self.count

    def events(self) -> list[bytes]:
        raws = decode_frame(self.payload)
        if len(raws) != self.count:
            raise CorruptLogError(
                f"frame at stream sequence {self.seq} holds {len(raws)} events, its header "
                f"says {self.count}"
            )
        return raws

    @classmethod
    def from_msg(cls, seq: int, headers: Mapping[str, str] | None, data: bytes) -> Frame:
        h = headers or {}
        try:
            pos, count = int(h[HEADER_POS]), int(h[HEADER_COUNT])
        except (KeyError, ValueError):
            raise CorruptLogError(
                f"message at stream sequence {seq} is not an omniroute frame (no "
                f"{HEADER_POS}/{HEADER_COUNT} headers)"
            ) from None
        return cls(seq, pos, count, h, data)


def _meta(msg: Msg) -> tuple[int, int, int]:
    """(stream sequence, consumer sequence, pending) of a JetStream-delivered message."""
    md = msg.metadata
    return md.sequence.stream, md.sequence.consumer, md.num_pending


# --- reading: the cursor ----------------------------------------------------------------------


class Cursor:
    """Reads one subject of a stream, in order, from stream sequence ``start_seq`` onwards.

    Owns its position (``next_seq``): the ephemeral pull consumer behind it is disposable
    and re-created at ``next_seq`` whenever it is lost (server restart, reconnect, missed
    heartbeats, delivery gap, deleted consumer). :meth:`fetch` never raises for those; it
    returns what it could read (possibly nothing) within ``max_wait``.
    """

    def __init__(
        self,
        nc: Client,
        stream: str,
        subject: str,
        start_seq: int = 1,
        *,
        batch: int = 256,
        max_bytes: int = 16 * 1024 * 1024,
        heartbeat_s: float = 1.0,
        headers_only: bool = False,
    ) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.stream = stream
        self.subject = subject
        self.next_seq = max(1, start_seq)
        self.num_pending: int | None = None
        """Messages of the subject after the last one delivered (the consumer's lag)."""
        self.resets = 0
        self._batch = batch
        self._max_bytes = max_bytes
        self._heartbeat = heartbeat_s
        self._headers_only = headers_only
        self._consumer: str | None = None
        self._sub: Subscription | None = None
        self._inbox = ""
        self._outstanding = 0
        self._dseq = 0
        self._last_heard = 0.0
        self._reconnects = nc.stats["reconnects"]
        self._retry_at = 0.0
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        await self._drop()

    async def _drop(self) -> None:
        sub, self._sub = self._sub, None
        consumer, self._consumer = self._consumer, None
        self._outstanding = 0
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if consumer is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._js.delete_consumer(self.stream, consumer), 1.0)

    async def _create(self) -> bool:
        """Create the consumer at ``next_seq``; False (and retry later) when it cannot."""
        await self._drop()
        now = time.monotonic()
        if now < self._retry_at or not self._nc.is_connected:
            return False
        name = uuid.uuid4().hex
        config = ConsumerConfig(
            name=name,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next_seq,
            ack_policy=AckPolicy.NONE,
            filter_subject=self.subject,
            inactive_threshold=max(30.0, 10 * self._heartbeat),
            mem_storage=True,
            num_replicas=1,
            headers_only=self._headers_only or None,
        )
        try:
            self._inbox = self._nc.new_inbox()
            self._sub = await self._nc.subscribe(
                self._inbox, pending_msgs_limit=-1, pending_bytes_limit=-1
            )
            await self._js.add_consumer(self.stream, config=config)
        except Exception as exc:  # no connection, JetStream not ready after a restart, ...
            _log.debug("cursor %s: cannot create consumer yet: %r", self.subject, exc)
            self._retry_at = time.monotonic() + 0.25
            await self._drop()
            return False
        self._consumer = name
        self._dseq = 0
        self._reconnects = self._nc.stats["reconnects"]
        return True

    async def _request(self) -> None:
        assert self._consumer is not None
        expires = max(5.0, 5 * self._heartbeat)
        req = {
            "batch": self._batch,
            "expires": int(expires * 1e9),
            "idle_heartbeat": int(self._heartbeat * 1e9),
        }
        if self._max_bytes:
            req["max_bytes"] = self._max_bytes
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self._consumer}"
        await self._nc.publish(subject, msgspec.json.encode(req), reply=self._inbox)
        self._outstanding = self._batch
        self._last_heard = time.monotonic()

    async def fetch(self, max_wait: float = 1.0, limit: int | None = None) -> list[Msg]:
        """Up to ``limit`` new messages in stream order, waiting at most ``max_wait`` s."""
        if self._closed:
            raise LogError("cursor is closed")
        deadline = time.monotonic() + max_wait
        out: list[Msg] = []
        limit = limit or self._batch
        while len(out) < limit:
            now = time.monotonic()
            if self._consumer is None or self._nc.stats["reconnects"] != self._reconnects:
                if not await self._create():
                    if out or now >= deadline:
                        break
                    await asyncio.sleep(min(0.05, max(0.0, deadline - now)))
                    continue
                self.resets += 1
            sub = self._sub
            assert sub is not None
            try:
                if self._outstanding <= 0:
                    await self._request()
                if out and sub.pending_msgs == 0:
                    break
                wait = deadline - time.monotonic()
                if wait <= 0 and sub.pending_msgs == 0:
                    break
                msg = await sub.next_msg(timeout=max(wait, 0.001))
            except (TimeoutError, nats.errors.TimeoutError):
                if time.monotonic() - self._last_heard > 3 * self._heartbeat + 1:
                    _log.info("cursor %s: no heartbeat, re-creating the consumer", self.subject)
                    self._consumer = None  # re-created on the next call
                break
            except Exception as exc:  # connection closed or draining
                _log.debug("cursor %s: %r", self.subject, exc)
                self._consumer = None
                break
            self._last_heard = time.monotonic()
            if not msg.reply:  # a status message
                self._status(msg)
                continue
            try:
                sseq, dseq, pending = _meta(msg)
            except Exception:
                continue
            self._outstanding -= 1
            if dseq != self._dseq + 1:
                _log.info(
                    "cursor %s: delivery gap (%d after %d), re-creating the consumer",
                    self.subject, dseq, self._dseq,
                )  # fmt: skip
                self._consumer = None
                continue
            self._dseq = dseq
            if sseq < self.next_seq:
                continue
            self.next_seq = sseq + 1
            self.num_pending = pending
            out.append(msg)
        return out

    def _status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status", "")
        if status == "100":  # idle heartbeat
            return
        if status in ("404", "408"):  # no messages / request expired: the request is over
            self._outstanding = 0
            if status == "404":
                self.num_pending = 0
            return
        description = headers.get("Description", "")
        if status == "409" and "Max" in description and "Bytes" in description:
            self._max_bytes = 0  # a message is larger than max_bytes: ask without a limit
            self._outstanding = 0
            return
        _log.info("cursor %s: status %s %s, re-creating the consumer", self.subject, status,
                  description)  # fmt: skip
        self._consumer = None


# --- the async log ------------------------------------------------------------------------------


def _api_error(data: bytes) -> tuple[int, str] | None:
    try:
        resp = _json_decoder.decode(data)
    except msgspec.DecodeError:
        return (0, f"unreadable reply {data[:100]!r}")
    err = resp.get("error") if isinstance(resp, dict) else None
    if err is None:
        return None
    return int(err.get("err_code", 0)), str(err.get("description", err))


class AsyncNatsLog:
    """The writer and reader of one tenant's ``.out`` log, on an asyncio connection.

    :meth:`open` learns the tail (last frame) with one request; :meth:`append` writes
    fenced, idempotent frames (see the module docstring); :meth:`frames` reads frames
    through a :class:`Cursor`.
    """

    def __init__(
        self,
        nc: Client,
        stream: StreamOptions,
        tenant: str,
        *,
        atomic: bool = True,
        timeout: float = 5.0,
        subject: str | None = None,
    ) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=timeout)
        self.options = stream
        self.subjects = stream.subjects(tenant)
        self.subject = subject or self.subjects.out
        self.tenant = tenant
        self.tail_seq = 0
        """Stream sequence of the last frame of the log (0: empty)."""
        self.end = 0
        """The next log position (the number of events, expired ones included)."""
        self.tail_headers: Mapping[str, str] = {}
        self._atomic = atomic
        self._timeout = timeout

    @property
    def max_frame_bytes(self) -> int:
        limit = self.options.max_frame_bytes
        server = self.nc.max_payload
        return min(limit, server - 4096) if server else limit

    async def open(self) -> None:
        """Learn the log's tail from the server."""
        last = await self.last_frame()
        if last is None:
            self.tail_seq, self.end, self.tail_headers = 0, 0, {}
        else:
            self.tail_seq, self.end, self.tail_headers = last.seq, last.end, last.headers

    async def last_frame(self) -> Frame | None:
        """The last frame of the log, or None when it is empty."""
        try:
            raw = await self.js.get_last_msg(self.options.name, self.subject, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        assert raw.seq is not None
        return Frame.from_msg(raw.seq, _plain_headers(raw.headers), raw.data or b"")

    async def get_frame(self, seq: int) -> Frame | None:
        """The frame at stream sequence ``seq``, or None if there is none on this subject."""
        try:
            raw = await self.js.get_msg(self.options.name, seq, direct=True)
        except nats.js.errors.NotFoundError:
            return None
        if raw.subject != self.subject:
            return None
        assert raw.seq is not None
        return Frame.from_msg(raw.seq, _plain_headers(raw.headers), raw.data or b"")

    async def append(
        self,
        encoded: Sequence[bytes],
        *,
        msg_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        attempts: int = 3,
    ) -> int:
        """Append encoded events as one atomic batch; return the position of the first.

        Raises :class:`LogConflictError` when another writer appended first (nothing was
        stored), ``LogError`` when the server cannot be reached (then the outcome is
        unknown: call :meth:`open` before appending again).
        """
        if not encoded:
            return self.end
        parts = _split(encoded, self.max_frame_bytes)
        if len(parts) > 1 and not self._atomic:
            raise ValueError(
                "append needs several frames, but the server has no atomic batches "
                "(nats-server >= 2.12); raise stream.max_frame_bytes or the server's max_payload"
            )
        if len(parts) > _MAX_ATOMIC_BATCH:
            raise ValueError(f"append of {len(parts)} frames exceeds one atomic batch")
        base_id = msg_id or f"{self.tenant}:{self.end}:{uuid.uuid4().hex[:16]}"
        messages: list[tuple[bytes, dict[str, str]]] = []
        pos = self.end
        for i, part in enumerate(parts):
            h = dict(headers or {})
            h[HEADER_POS] = str(pos)
            h[HEADER_COUNT] = str(len(part))
            h[_MSG_ID] = base_id if len(parts) == 1 else f"{base_id}/{i}"
            if i == 0:
                h[_EXPECTED_SUBJECT_SEQ] = str(self.tail_seq)
            messages.append((encode_frame(part), h))
            pos += len(part)
        last_id = messages[-1][1][_MSG_ID]
        error: str = ""
        for attempt in range(attempts):
            try:
                reply = await self._publish(messages)
            except _TRANSIENT as exc:
                error = repr(exc)
                await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
                continue
            failure = _api_error(reply)
            if failure is None:
                seq = int(_json_decoder.decode(reply)["seq"])
                self._advance(seq, pos, messages[-1][1])
                return pos - len(encoded)
            code, description = failure
            if code == _ERR_WRONG_LAST_SEQUENCE:
                last = await self._last_or_none()
                if last is not None and last.headers.get(_MSG_ID) == last_id:
                    self._advance(last.seq, last.end, last.headers)  # an earlier attempt landed
                    return pos - len(encoded)
                raise LogConflictError(
                    f"{self.subject}: another writer appended first ({description}); "
                    f"this writer expected the last frame at sequence {self.tail_seq}",
                    last.seq if last is not None else None,
                )
            raise LogError(f"{self.subject}: append refused: {description} (code {code})")
        raise LogError(f"{self.subject}: append failed after {attempts} attempts: {error}")

    async def _last_or_none(self) -> Frame | None:
        for attempt in range(5):
            try:
                return await self.last_frame()
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                await asyncio.sleep(0.1 * (attempt + 1))
        raise LogError(f"{self.subject}: cannot read the log's tail")

    def _advance(self, seq: int, end: int, headers: Mapping[str, str]) -> None:
        self.tail_seq, self.end, self.tail_headers = seq, end, headers

    async def _publish(self, messages: list[tuple[bytes, dict[str, str]]]) -> bytes:
        if len(messages) == 1:
            payload, headers = messages[0]
            msg = await self.nc.request(self.subject, payload, timeout=self._timeout,
                                        headers=headers)  # fmt: skip
            return msg.data
        batch_id = uuid.uuid4().hex
        for i, (payload, headers) in enumerate(messages, start=1):
            headers[_BATCH_ID] = batch_id
            headers[_BATCH_SEQ] = str(i)
            if i < len(messages):
                await self.nc.publish(self.subject, payload, headers=headers)
            else:
                headers[_BATCH_COMMIT] = "1"
                msg = await self.nc.request(self.subject, payload, timeout=self._timeout,
                                            headers=headers)  # fmt: skip
                return msg.data
        raise AssertionError("unreachable")

    def cursor(self, start_seq: int, **kwargs: Any) -> Cursor:
        """A cursor over this log's frames from stream sequence ``start_seq``."""
        return Cursor(self.nc, self.options.name, self.subject, start_seq, **kwargs)

    async def frames(
        self, start_seq: int = 1, stop_seq: int | None = None, *, max_wait: float = 1.0
    ) -> AsyncIterator[Frame]:
        """Frames from ``start_seq`` up to ``stop_seq`` (default: the tail now), in order."""
        if stop_seq is None:
            last = await self.last_frame()
            stop_seq = last.seq if last is not None else 0
        if stop_seq < start_seq:
            return
        cursor = self.cursor(start_seq)
        try:
            while cursor.next_seq <= stop_seq:
                msgs = await cursor.fetch(max_wait)
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > stop_seq:
                        return
                    yield Frame.from_msg(seq, _plain_headers(msg.headers), msg.data)
        finally:
            await cursor.close()


def _plain_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (headers or {}).items()}


# --- the synchronous EventLog facade -----------------------------------------------------------

_T = TypeVar("_T")


class _LoopThread:
    """An asyncio event loop running in a daemon thread; submit coroutines to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise LogError(f"NATS operation timed out after {timeout} s") from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class NatsLog(EventLog):
    """The ``EventLog`` of one tenant's ``.out`` subject in a JetStream stream.

    Connects on construction (``options`` from ``[nats]``, the environment applied by the
    caller), creates or checks the stream (``stream``) and indexes the subject's frames.
    ``readonly=True`` opens a follower that never appends and picks up other writers'
    frames with :meth:`refresh`. ``subject`` overrides the log subject (default
    ``<prefix>.<tenant>.out``).
    """

    def __init__(
        self,
        options: NatsOptions,
        tenant: str,
        stream: StreamOptions | None = None,
        *,
        readonly: bool = False,
        subject: str | None = None,
    ) -> None:
        self._options = options
        self._stream = stream or StreamOptions()
        self._tenant = tenant
        self._readonly = readonly
        self._subject_override = subject
        self._timeout = options.request_timeout_s * 3 + options.initial_connect_s
        self._seqs = array("q")  # stream sequence of each frame
        self._starts = array("q")  # position of each frame's first event
        self._first = 0  # the first readable position (> 0 once old frames expired)
        self._last_count = 0  # events in the last indexed frame
        self._failed: BaseException | None = None
        self._thread: _LoopThread | None = _LoopThread(f"nats-log-{tenant}")
        try:
            self._core: AsyncNatsLog = self._thread.run(self._open(), self._timeout)
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise

    async def _open(self) -> AsyncNatsLog:
        nc = await connect(self._options)
        try:
            atomic = await ensure_stream(nc.jetstream(), self._stream)
            core = AsyncNatsLog(
                nc, self._stream, self._tenant, atomic=atomic,
                timeout=self._options.request_timeout_s, subject=self._subject_override,
            )  # fmt: skip
            await core.open()
            await self._scan(core)
        except BaseException:
            await nc.close()
            raise
        return core

    async def _scan(self, core: AsyncNatsLog) -> None:
        """Index frames after the last indexed one, up to the tail."""
        last = await core.last_frame()
        if last is None:
            return
        start = self._seqs[-1] + 1 if self._seqs else 1
        if last.seq < start:
            return
        cursor = core.cursor(start, batch=4096, headers_only=True)
        try:
            while cursor.next_seq <= last.seq:
                msgs = await cursor.fetch(2.0)
                if not msgs and cursor.next_seq <= last.seq and cursor.resets > 20:
                    raise LogError(f"{core.subject}: cannot read the log's frames")
                for msg in msgs:
                    seq = msg.metadata.sequence.stream
                    if seq > last.seq:
                        break
                    frame = Frame.from_msg(seq, _plain_headers(msg.headers), b"")
                    self._index(frame)
        finally:
            await cursor.close()
        core.tail_seq, core.end, core.tail_headers = last.seq, last.end, last.headers

    def _index(self, frame: Frame) -> None:
        expected = self._starts[-1] + self._count(len(self._starts) - 1) if self._starts else None
        if expected is None:
            self._first = frame.pos
        elif frame.pos != expected:
            raise CorruptLogError(
                f"frame at stream sequence {frame.seq} starts at position {frame.pos}, "
                f"expected {expected}"
            )
        self._seqs.append(frame.seq)
        self._starts.append(frame.pos)
        self._last_count = frame.count

    def _count(self, i: int) -> int:
        if i + 1 < len(self._starts):
            return self._starts[i + 1] - self._starts[i]
        return self._last_count

    # --- properties --------------------------------------------------------------------------

    @property
    def tenant(self) -> str:
        return self._tenant

    @property
    def subject(self) -> str:
        return self._core.subject

    @property
    def options(self) -> NatsOptions:
        return self._options

    @property
    def stream(self) -> StreamOptions:
        return self._stream

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def closed(self) -> bool:
        return self._thread is None

    @property
    def first_position(self) -> int:
        """The first position still stored (old frames may have expired by ``max_age``)."""
        return self._first

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._thread is None:
            coro.close()
            raise LogError(f"{self._stream.prefix}.{self._tenant}: the log is closed")
        return self._thread.run(coro, self._timeout)

    def _check_open(self) -> None:
        if self._thread is None:
            raise LogError(f"{self._stream.prefix}.{self._tenant}: the log is closed")

    # --- the EventLog interface -------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> list[int]:
        self._check_open()
        if self._readonly:
            raise LogError(f"{self.subject} is open read-only")
        if self._failed is not None:
            raise LogError(f"{self.subject}: an earlier append failed ({self._failed}); reopen")
        encoded = encode_batch(events)
        if not encoded:
            return []
        try:
            first = self._run(self._append(encoded))
        except LogConflictError:
            raise
        except LogError as exc:
            self._failed = exc
            raise
        return list(range(first, first + len(encoded)))

    async def _append(self, encoded: list[bytes]) -> int:
        core = self._core
        prev_seq = core.tail_seq
        first = await core.append(encoded)
        # index the frame(s) just written: one, or an atomic batch ending at tail_seq
        parts = _split(encoded, core.max_frame_bytes)
        if len(parts) == 1:
            self._index(Frame(core.tail_seq, first, len(encoded), {}, b""))
        else:
            async for frame in core.frames(prev_seq + 1, core.tail_seq):
                self._index(Frame(frame.seq, frame.pos, frame.count, {}, b""))
        return first

    def read_raw(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        self._check_open()
        stop = self._stop(start, limit)
        if start < stop and start < self._first:
            raise LogError(
                f"{self.subject}: positions before {self._first} have expired (stream max_age)"
            )
        return self._read_raw(start, stop)

    def _read_raw(self, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        if start >= stop:
            return
        i = bisect.bisect_right(self._starts, start) - 1
        j = bisect.bisect_left(self._starts, stop)
        seqs = list(self._seqs[i:j])
        starts = list(self._starts[i:j])
        chunk = 256
        for k in range(0, len(seqs), chunk):
            frames = self._run(self._fetch(seqs[k : k + chunk]))
            for expected_pos, frame in zip(starts[k : k + chunk], frames, strict=True):
                if frame.pos != expected_pos:
                    raise CorruptLogError(
                        f"{self.subject}: frame at stream sequence {frame.seq} moved from "
                        f"position {expected_pos} to {frame.pos}"
                    )
                raws = frame.events()
                for n in range(max(start - frame.pos, 0), min(stop - frame.pos, frame.count)):
                    yield frame.pos + n, raws[n]

    async def _fetch(self, seqs: list[int]) -> list[Frame]:
        """The frames at these stream sequences (ascending, all on this subject)."""
        core = self._core
        if len(seqs) <= 2:
            frames = []
            for seq in seqs:
                frame = await core.get_frame(seq)
                if frame is None:
                    raise LogError(f"{core.subject}: frame at stream sequence {seq} is gone")
                frames.append(frame)
            return frames
        wanted = set(seqs)
        found: list[Frame] = []
        async for frame in core.frames(seqs[0], seqs[-1]):
            if frame.seq in wanted:
                found.append(frame)
        if [f.seq for f in found] != seqs:
            raise LogError(f"{core.subject}: frames between {seqs[0]} and {seqs[-1]} are gone")
        return found

    def end(self) -> int:
        self._check_open()
        return self._core.end

    def refresh(self) -> int:
        """Index frames other writers appended since; return ``end()``."""
        self._check_open()
        self._run(self._scan(self._core))
        return self._core.end

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with contextlib.suppress(Exception):
            thread.run(self._core.nc.close(), 5)
        thread.stop()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._core.end} events"
        return f"NatsLog({self._stream.prefix}.{self._tenant}, {state})"
