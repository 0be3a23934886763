"""``omniroute serve``: the log -> Engine -> log loop over NATS JetStream.

Per tenant ``T`` (subjects of :mod:`omniroute.adapters.nats.log`, prefix ``P``):

- Producers publish inputs to ``P.T.in``: a message is a msgpack array of events (a frame,
  what ``omniroute send`` writes), a single msgpack event map, or JSON (one event object or
  an array of them). A ``Nats-Msg-Id`` makes the server drop a re-published message within
  the stream's duplicate window; an event ``id`` makes the engine skip a repeated event
  beyond it.
- The writer (the instance holding T's lease) consumes ``P.T.in`` in stream order, applies
  each event and appends to ``P.T.out`` -- the tenant's one ordered log -- the input
  followed by the decisions it caused, many inputs per frame, with
  ``Nats-Expected-Last-Subject-Sequence`` (a stale writer can never append), a
  ``Nats-Msg-Id`` derived from the log position and the input sequences (an append retried
  after a lost acknowledgement is recognised, not doubled) and ``Omniroute-In`` = the last
  input sequence the log now covers. ``omniroute replay`` verifies this log like a file log.
- Every ``tick_interval_s`` the writer publishes a ``Tick`` to ``P.T.in``: timers fire
  through the log, so a replay fires them identically.
- Bad input never stops the service: an unparsable message goes to ``P.T.dead`` (raw bytes,
  reason in ``Omniroute-Reason``); every bad event -- undecodable, wrong schema, the wrong
  tenant for the subject, a decision published as input, or an invalid transition the
  engine refuses -- is published as an ``EventRejected`` (JSON) on ``P.T.rejected``. The
  first four never reach the log (they would not replay); the engine's own rejections are
  decisions in the log and are mirrored there. An input on which the engine itself fails
  is quarantined the same way: the engine is rebuilt without it and it is rejected as
  ``internal``. Rejections are published before the frame is appended, with message ids
  derived from the input's sequence: at least once, de-duplicated within the window.

Restart: the writer saves snapshots (engine state + the log's stream sequence, position and
input sequence) every ``snapshot_every`` log events and on shutdown, to the JetStream object
store or a folder. On start the snapshot is restored (when the log still holds the frame it
names and the policy digest matches), the log is read forward from it -- the service's own
earlier decisions included, each re-decided and checked byte for byte -- and inputs are
consumed after the last one the log records. Nothing is decided twice, nothing skipped.

One writer per tenant: a lease in a JetStream KV bucket (TTL ``lease_ttl_s``, renewed every
third of it). An instance without the lease is a hot standby: it follows the log, applying
frames as they are appended, and polls the lease every tenth of the TTL; when the writer
dies its lease expires and the standby takes over within the TTL, after reading the log to
its end. A graceful stop (SIGTERM/SIGINT) finishes the append in flight, saves a snapshot
and releases the lease, so a standby takes over at once. If a stale writer ever races the
new one, the expected-sequence check refuses its append; it rebuilds from its snapshot and
the log, and becomes a standby when its lease is gone.

Server restarts: the connection reconnects forever; input and log cursors re-create their
consumers at their own positions (a pull subscription does not resume by itself); appends
that cannot be acknowledged are retried with the same message id until they are, or the
lease is lost.

The loop is single-threaded asyncio; the engine is applied between awaits, overlapping the
acknowledgement of one frame with the decisions of the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import tempfile
import time
from collections import Counter, deque
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, ObjectStoreConfig, StorageType
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from omniroute.engine.engine import Engine
from omniroute.engine.events import (
    TAGS,
    Event,
    EventRejected,
    Input,
    Tick,
    decode_json,
    decode_msgpack,
    encode_json,
    encode_msgpack,
    is_decision,
    tag_of,
)
from omniroute.engine.log import LogError
from omniroute.engine.policy import Policy, load_policy

from ..nats.log import (
    HEADER_IN,
    HEADER_WRITER,
    AsyncNatsLog,
    Cursor,
    Frame,
    LogConflictError,
    Subjects,
    connect,
    encode_frame,
    ensure_stream,
)
from .config import ServiceConfig
from .metrics import Metrics

__all__ = [
    "HEADER_REASON",
    "Rejection",
    "Service",
    "ServiceError",
    "Snapshot",
    "decode_inputs",
    "policy_digest",
    "serve",
]

_log = logging.getLogger(__name__)

HEADER_REASON = "Omniroute-Reason"
HEADER_IN_SEQ = "Omniroute-In-Seq"
_MSG_ID = "Nats-Msg-Id"


class ServiceError(Exception):
    """The service cannot go on (a replay mismatch with ``on_mismatch = "stop"``, a log
    whose start has expired without a snapshot, a configuration the server refuses)."""


# --- decoding inputs ---------------------------------------------------------------------------


class Rejection(NamedTuple):
    """A bad input event, before it becomes an ``EventRejected``."""

    stage: str
    reason: str
    event_type: str | None = None
    event_id: str | None = None


_json_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_msgpack_raw_list = msgspec.msgpack.Decoder(list[msgspec.Raw])
_msgpack_input_list: msgspec.msgpack.Decoder[list[Input]] = msgspec.msgpack.Decoder(list[Input])
_MAP_MARKERS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}


def _describe(raw: bytes, json: bool) -> tuple[str | None, str | None]:
    """Best-effort ``type`` and ``id`` of an event that did not validate."""
    try:
        obj = msgspec.json.decode(raw) if json else msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    etype, eid = obj.get("type"), obj.get("id")
    return (etype if isinstance(etype, str) else None, eid if isinstance(eid, str) else None)


def decode_inputs(data: bytes, tenant: str) -> tuple[list[Event | Rejection], str | None]:
    """The events of one ``.in`` message, each valid for ``tenant`` or a :class:`Rejection`.

    Returns ``([], reason)`` when the message as a whole does not parse (a dead letter).
    """
    stripped = data.lstrip()
    if not stripped:
        return [], "empty message"
    json = stripped[:1] in (b"{", b"[")
    raws: list[bytes]
    if json:
        try:
            raws = [stripped] if stripped[:1] == b"{" else [
                bytes(r) for r in _json_raw_list.decode(stripped)
            ]  # fmt: skip
        except msgspec.DecodeError as exc:
            return [], f"not valid JSON: {exc}"
    elif data[0] in _MAP_MARKERS:
        raws = [data]
    else:
        try:  # the fast path: a frame of valid inputs, decoded in one call
            inputs = _msgpack_input_list.decode(data)
        except msgspec.DecodeError:
            pass  # something in it is not a valid input: classify one by one below
        else:
            if all(e.tenant == tenant for e in inputs):
                return list(inputs), None
        try:
            raws = [bytes(r) for r in _msgpack_raw_list.decode(data)]
        except msgspec.DecodeError as exc:
            return [], f"neither a msgpack array of events nor JSON: {exc}"
    items: list[Event | Rejection] = []
    for raw in raws:
        try:
            event = decode_json(raw) if json else decode_msgpack(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            items.append(Rejection("schema", f"invalid event: {exc}", *_describe(raw, json)))
            continue
        if event.tenant != tenant:
            items.append(
                Rejection(
                    "tenant",
                    f"event for tenant {event.tenant!r} published on the subject of tenant "
                    f"{tenant!r}",
                    TAGS.get(type(event)),
                    event.id,
                )
            )
        elif is_decision(event):
            items.append(
                Rejection(
                    "decision",
                    "decisions are emitted by the engine, not published as input",
                    TAGS.get(type(event)),
                    event.id,
                )
            )
        else:
            items.append(event)
    return items, None


# --- snapshots ---------------------------------------------------------------------------------


class Snapshot(msgspec.Struct, kw_only=True):
    """Engine state after the log frame at stream sequence ``out_seq`` (position ``out_end``)."""

    version: int = 1
    tenant: str
    out_seq: int
    out_end: int
    in_seq: int
    policy_digest: str
    created_ms: int
    engine: bytes


_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)
_encoder = msgspec.msgpack.Encoder()  # the encoding of encode_msgpack, bound once


def policy_digest(policy: Policy) -> str:
    """A short digest of a policy: snapshots made under another policy are not restored."""
    return hashlib.sha256(msgspec.json.encode(policy)).hexdigest()[:16]


class _SnapshotStore:
    async def load(self, tenant: str) -> bytes | None:
        return None

    async def save(self, tenant: str, data: bytes) -> None:
        return None


class _ObjectStoreSnapshots(_SnapshotStore):
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def load(self, tenant: str) -> bytes | None:
        try:
            result = await self._store.get(tenant)
        except nats.js.errors.ObjectNotFoundError:
            return None
        except nats.js.errors.ObjectDeletedError:
            return None
        return bytes(result.data) if result.data is not None else None

    async def save(self, tenant: str, data: bytes) -> None:
        await self._store.put(tenant, data)


class _FileSnapshots(_SnapshotStore):
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._dir / f"{key}.snapshot"

    async def load(self, tenant: str) -> bytes | None:
        try:
            return self._path(tenant).read_bytes()
        except FileNotFoundError:
            return None

    async def save(self, tenant: str, data: bytes) -> None:
        path = self._path(tenant)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=f".{tenant}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


# --- the lease ---------------------------------------------------------------------------------


class _Lease:
    """One writer per tenant: a key in a KV bucket whose TTL is the lease's."""

    def __init__(self, kv: KeyValue, tenant: str, instance: str, ttl: float) -> None:
        self._kv = kv
        self.key = tenant
        self.instance = instance
        self.ttl = ttl
        self.revision = 0
        self.held = False
        self.holder: str | None = None
        self._renewed = 0.0
        self._task: asyncio.Task[None] | None = None

    def _value(self) -> bytes:
        return msgspec.json.encode(
            {"instance": self.instance, "pid": os.getpid(), "ms": int(time.time() * 1000)}
        )

    async def try_acquire(self) -> bool:
        """Take the lease if it is free (or held by this instance's earlier incarnation)."""
        if self.held:
            return True
        try:
            revision = await self._take()
        except _NATS_TRANSIENT as exc:
            _log.debug("%s: lease not checked: %r", self.key, exc)
            return False
        if revision is None:
            return False
        self.revision = revision
        self.held = True
        self.holder = self.instance
        self._renewed = time.monotonic()
        self._task = asyncio.create_task(self._renew_loop(), name=f"lease-{self.key}")
        return True

    async def _take(self) -> int | None:
        try:
            return await self._kv.create(self.key, self._value())
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None  # (nats-py's create looked at a key that expired meanwhile)
        try:
            entry = await self._kv.get(self.key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None  # expired or released in between: the next poll takes it
        holder = _holder(entry.value)
        if holder != self.holder:
            _log.info("%s: lease held by %s", self.key, holder)
            self.holder = holder
        if holder != self.instance or entry.revision is None:
            return None
        try:  # our own earlier incarnation (same instance name): take it back now
            return await self._kv.update(self.key, self._value(), last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def _renew_loop(self) -> None:
        while self.held:
            await asyncio.sleep(self.ttl / 3)
            try:
                self.revision = await self._kv.update(self.key, self._value(), last=self.revision)
                self._renewed = time.monotonic()
            except nats.js.errors.KeyWrongLastSequenceError:
                _log.warning("%s: lease lost (taken over or expired)", self.key)
                self.held = False
            except Exception as exc:
                if time.monotonic() - self._renewed > self.ttl:
                    _log.warning("%s: lease not renewed for %.1f s (%r)", self.key, self.ttl, exc)
                    self.held = False

    def still_valid(self) -> bool:
        """Held and renewed within the TTL (a writer cut off from NATS stops by itself)."""
        if self.held and time.monotonic() - self._renewed > self.ttl:
            self.held = False
        return self.held

    async def release(self) -> None:
        task, self._task = self._task, None
        await _cancel(task)
        if self.held:
            self.held = False
            with contextlib.suppress(Exception):
                await self._kv.delete(self.key, last=self.revision)
                _log.info("%s: lease released", self.key)

    def drop(self) -> None:
        """Forget the lease without touching the server (it expires by itself)."""
        self.held = False
        if self._task is not None:
            self._task.cancel()
            self._task = None


async def _cancel(task: asyncio.Task[object] | None, timeout: float = 5.0) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a library swallowed it."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: not "never retrieved"


def _holder(value: bytes | None) -> str | None:
    try:
        obj = msgspec.json.decode(value or b"{}")
    except msgspec.DecodeError:
        return None
    holder = obj.get("instance") if isinstance(obj, dict) else None
    return holder if isinstance(holder, str) else None


_NATS_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
)


# --- one tenant ----------------------------------------------------------------------------------


class _Fenced(Exception):
    """Leading stopped with engine state that the log does not hold: rebuild."""


class _Poison(Exception):
    def __init__(self, seq: int, index: int, exc: BaseException) -> None:
        super().__init__(f"the engine failed on input {index} of message {seq}: {exc!r}")
        self.seq, self.index = seq, index


@dataclass
class _Batch:
    encoded: list[bytes] = field(default_factory=list)
    first_in: int = 0
    last_in: int = 0
    inputs: int = 0
    decisions: Counter[type] = field(default_factory=Counter)
    rejected: list[tuple[int, int, EventRejected, str]] = field(default_factory=list)
    dead: list[tuple[int, bytes, str]] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)  # stream timestamps (ns) of the messages


def _ack_meta(msg: Msg) -> tuple[int, int]:
    """(stream sequence, stream timestamp in ns) from a JetStream message's reply subject."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= 11:  # $JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>...
        return int(tokens[7]), int(tokens[9])
    md = msg.metadata
    return md.sequence.stream, int(md.timestamp.timestamp() * 1e9)


class _Worker:
    """Engine, lease and log of one tenant; writer or hot standby."""

    def __init__(self, service: Service, tenant: str) -> None:
        self.svc = service
        self.tenant = tenant
        self.key = f"{service.config.stream.name}.{tenant}"
        """The tenant's name in the lease bucket and the snapshot store (one per stream)."""
        self.subjects = Subjects(service.config.stream.prefix, tenant)
        assert service.nc is not None
        self.log = AsyncNatsLog(
            service.nc, service.config.stream, tenant, atomic=service.atomic,
            timeout=service.config.nats.request_timeout_s,
        )  # fmt: skip
        self.engine = Engine(service.policy)
        self.applied_seq = 0  # stream sequence of the last log frame applied
        self.applied_end = 0  # log position after it
        self.in_seq = 0  # the last input sequence the log (as applied) covers
        self.role = "starting"
        self._pending: deque[bytes] = deque()
        self._snap: Snapshot | None = None
        self._since_snapshot = 0
        self._saving: asyncio.Task[None] | None = None
        self._poison: set[tuple[int, int]] = set()
        self._next_in = 0  # leading: the last input sequence applied to the engine
        self.lease: _Lease | None = None
        self.takeover_at: float | None = None

    # --- applying the log ---------------------------------------------------------------

    def _mismatch(self, message: str) -> None:
        self.svc.metrics.mismatches.labels(self.tenant).inc()
        text = f"{self.subjects.out}: {message}"
        if self.svc.config.service.on_mismatch == "stop":
            raise ServiceError(text + ' (on_mismatch = "stop")')
        _log.error("%s; going on with the recomputed state", text)
        self._pending.clear()

    def _apply_frame(self, frame: Frame) -> None:
        if frame.pos != self.applied_end:
            if self.applied_seq == 0 and self.applied_end == 0 and frame.pos > 0:
                raise ServiceError(
                    f"{self.subjects.out}: the log starts at position {frame.pos} (older frames "
                    "expired) and no usable snapshot covers them"
                )
            raise ServiceError(
                f"{self.subjects.out}: frame at stream sequence {frame.seq} starts at position "
                f"{frame.pos}, expected {self.applied_end}"
            )
        engine = self.engine
        pending = self._pending
        for raw in frame.events():
            event = decode_msgpack(raw)
            if is_decision(event):
                if not pending:
                    self._mismatch(f"position {frame.pos}: a decision the engine did not make")
                elif pending.popleft() != raw:
                    self._mismatch(f"frame at sequence {frame.seq}: the decisions differ")
                continue
            if pending:
                self._mismatch(
                    f"frame at sequence {frame.seq}: the engine made a decision the log "
                    "does not record"
                )
            pending.extend(encode_msgpack(d) for d in engine.apply(event))
        self.applied_seq, self.applied_end = frame.seq, frame.end
        if (value := frame.headers.get(HEADER_IN)) is not None:
            self.in_seq = max(self.in_seq, int(value))
        self._since_snapshot += frame.count
        self.svc.metrics.position.labels(self.tenant).set(self.applied_end)

    async def _last_frame(self) -> Frame | None:
        while True:
            try:
                return await self.log.last_frame()
            except _NATS_TRANSIENT:
                if self.svc.stopping.is_set():
                    raise
                await asyncio.sleep(0.2)

    async def catch_up(self) -> None:
        """Apply every frame of the log after ``applied_seq`` (the log as it is now)."""
        while True:
            last = await self._last_frame()
            if last is None or last.seq <= self.applied_seq:
                break
            cursor = self.log.cursor(self.applied_seq + 1, batch=256)
            try:
                while cursor.next_seq <= last.seq:
                    if self.svc.stopping.is_set() and self.svc.hard_stop:
                        return
                    for msg in await cursor.fetch(1.0):
                        seq, _ = _ack_meta(msg)
                        if seq > last.seq:
                            break
                        self._apply_frame(Frame.from_msg(seq, _headers(msg), msg.data))
            finally:
                await cursor.close()
        if self._pending:
            self._mismatch("the engine made decisions the log does not record (at its end)")

    async def recover(self, from_memory: bool = False) -> None:
        """Rebuild the engine: restore the snapshot, then read the log forward."""
        snap = self._snap if from_memory else None
        if snap is None:
            snap = await self._load_snapshot()
        self.engine = Engine(self.svc.policy)
        self.applied_seq = self.applied_end = self.in_seq = 0
        self._pending.clear()
        if snap is not None and await self._usable(snap):
            self.engine = Engine.restore(snap.engine, self.svc.policy)
            self.applied_seq, self.applied_end, self.in_seq = (
                snap.out_seq,
                snap.out_end,
                snap.in_seq,
            )
            self._snap = snap
            _log.info(
                "%s: restored snapshot at log position %d (stream sequence %d)",
                self.tenant, snap.out_end, snap.out_seq,
            )  # fmt: skip
        else:
            self._snap = None
        self._since_snapshot = 0
        started = time.perf_counter()
        before = self.applied_end
        await self.catch_up()
        _log.info(
            "%s: log applied to position %d (%d events in %.2f s), inputs up to %d",
            self.tenant, self.applied_end, self.applied_end - before,
            time.perf_counter() - started, self.in_seq,
        )  # fmt: skip

    async def _load_snapshot(self) -> Snapshot | None:
        try:
            data = await self.svc.snapshots.load(self.key)
        except Exception as exc:
            _log.warning("%s: cannot load the snapshot (%r); reading the whole log", self.tenant,
                         exc)  # fmt: skip
            return None
        if data is None:
            return None
        try:
            return _snapshot_decoder.decode(data)
        except msgspec.DecodeError as exc:
            _log.warning("%s: unreadable snapshot (%s); reading the whole log", self.tenant, exc)
            return None

    async def _usable(self, snap: Snapshot) -> bool:
        if snap.tenant != self.tenant:
            _log.warning("%s: snapshot is of tenant %r; ignored", self.tenant, snap.tenant)
            return False
        if snap.policy_digest != self.svc.digest:
            _log.warning("%s: snapshot was made under another policy; ignored", self.tenant)
            return False
        if snap.out_seq == 0:
            return snap.out_end == 0
        frame = await self.log.get_frame(snap.out_seq)
        if frame is None or frame.end != snap.out_end:
            _log.warning(
                "%s: snapshot names log position %d at stream sequence %d, which the log does "
                "not hold; ignored", self.tenant, snap.out_end, snap.out_seq,
            )  # fmt: skip
            return False
        return True

    # --- snapshots ------------------------------------------------------------------------

    def _snapshot_due(self) -> bool:
        every = self.svc.config.service.snapshot_every
        return bool(every) and self._since_snapshot >= every

    async def _snapshot(self, wait: bool = False) -> None:
        """Snapshot the engine (state == the log up to ``applied_seq``) and save it."""
        if self.svc.config.service.snapshots == "off":
            return
        if self._saving is not None and not self._saving.done():
            if not wait:
                return
            with contextlib.suppress(Exception):
                await self._saving
        snap = Snapshot(
            tenant=self.tenant, out_seq=self.applied_seq, out_end=self.applied_end,
            in_seq=self.in_seq, policy_digest=self.svc.digest,
            created_ms=int(time.time() * 1000), engine=self.engine.snapshot(),
        )  # fmt: skip
        self._snap = snap
        self._since_snapshot = 0
        self._saving = asyncio.create_task(self._save(snap))
        if wait:
            await self._saving

    async def _save(self, snap: Snapshot) -> None:
        try:
            await self.svc.snapshots.save(self.key, msgspec.msgpack.encode(snap))
        except Exception as exc:
            _log.warning("%s: snapshot not saved: %r", self.tenant, exc)
            return
        self.svc.metrics.snapshots.labels(self.tenant).inc()
        _log.debug("%s: snapshot saved at log position %d", self.tenant, snap.out_end)

    # --- the writer -----------------------------------------------------------------------

    def _apply_messages(self, msgs: deque[Msg], max_msgs: int, max_bytes: int) -> _Batch:
        """Apply the events of input messages taken from ``msgs``, until ``max_msgs`` of
        them or about ``max_bytes`` of log events; the batch to append. (The hot path.)"""
        batch = _Batch()
        apply = self.engine.apply
        encode = _encoder.encode
        out = batch.encoded
        append = out.append
        kinds = batch.decisions
        tenant = self.tenant
        poison = self._poison
        size = 0
        taken = 0
        while msgs and taken < max_msgs and size < max_bytes:
            msg = msgs.popleft()
            taken += 1
            seq, stamp = _ack_meta(msg)
            if seq <= self._next_in:
                continue
            if not batch.first_in:
                batch.first_in = seq
            items, error = decode_inputs(msg.data, tenant)
            if error is not None:
                batch.dead.append((seq, msg.data, error))
                batch.rejected.append((seq, 0, self._rejection(f"undecodable message: {error}"),
                                       "decode"))  # fmt: skip
            for index, item in enumerate(items):
                if isinstance(item, Rejection):
                    rej = self._rejection(item.reason, item.event_type, item.event_id)
                    batch.rejected.append((seq, index, rej, item.stage))
                    continue
                if poison and (seq, index) in poison:
                    rej = self._rejection("internal error: the engine failed on this event",
                                          TAGS.get(type(item)), item.id)  # fmt: skip
                    batch.rejected.append((seq, index, rej, "internal"))
                    continue
                try:
                    decisions = apply(item)
                except Exception as exc:
                    raise _Poison(seq, index, exc) from exc
                data = encode(item)
                append(data)
                size += len(data)
                for d in decisions:
                    data = encode(d)
                    append(data)
                    size += len(data)
                    kinds[type(d)] += 1
                    if type(d) is EventRejected:
                        batch.rejected.append((seq, index, d, "engine"))
                batch.inputs += 1
            batch.last_in = seq
            batch.stamps.append(stamp)
            self._next_in = seq
        return batch

    def _rejection(
        self, reason: str, event_type: str | None = None, event_id: str | None = None
    ) -> EventRejected:
        return EventRejected(
            tenant=self.tenant, ts=self.engine.clock, reason=reason, event_type=event_type,
            event_id=event_id,
        )  # fmt: skip

    async def _publish_rejections(self, batch: _Batch) -> None:
        """Publish the batch's rejections and dead letters (idempotent message ids)."""
        js = self.svc.js
        todo: list[tuple[str, bytes, dict[str, str]]] = []
        for seq, index, rej, stage in batch.rejected:
            headers = {_MSG_ID: f"rej:{self.tenant}:{seq}:{index}:{stage}",
                       HEADER_IN_SEQ: str(seq)}  # fmt: skip
            todo.append((self.subjects.rejected, encode_json(rej), headers))
            self.svc.metrics.rejected.labels(self.tenant, stage).inc()
        for seq, data, reason in batch.dead:
            clean = reason[:1000].replace("\r", " ").replace("\n", " ")
            headers = {_MSG_ID: f"dead:{self.tenant}:{seq}", HEADER_IN_SEQ: str(seq),
                       HEADER_REASON: clean}  # fmt: skip
            todo.append((self.subjects.dead, data, headers))
        attempt = 0
        while todo:
            results = await asyncio.gather(
                *(js.publish(subject, data, headers=dict(h)) for subject, data, h in todo),
                return_exceptions=True,
            )
            todo = [job for job, r in zip(todo, results, strict=True) if isinstance(r, Exception)]
            if not todo:
                return
            attempt += 1
            if attempt == 1:
                _log.warning("%s: %d rejection(s) not published yet; retrying", self.tenant,
                             len(todo))  # fmt: skip
            if self.svc.hard_stop or (self.lease is not None and not self.lease.still_valid()):
                raise _Fenced("rejections not published")
            await asyncio.sleep(0.25)

    async def _append(self, batch: _Batch) -> _Batch:
        if batch.rejected or batch.dead:
            await self._publish_rejections(batch)
        if not batch.encoded:
            return batch
        headers = {HEADER_IN: str(batch.last_in), HEADER_WRITER: self.svc.instance}
        msg_id = f"{self.tenant}:{self.log.end}:{batch.first_in}-{batch.last_in}"
        warned = False
        while True:
            try:
                await self.log.append(batch.encoded, msg_id=msg_id, headers=headers)
                return batch
            except LogConflictError:
                raise
            except LogError as exc:
                if self.svc.hard_stop or self.lease is None or not self.lease.still_valid():
                    raise _Fenced(f"append abandoned: {exc}") from exc
                if not warned:
                    _log.warning("%s: append not acknowledged (%s); retrying", self.tenant, exc)
                    warned = True
                await asyncio.sleep(0.25)

    def _commit(self, batch: _Batch) -> None:
        self.applied_seq, self.applied_end = self.log.tail_seq, self.log.end
        self.in_seq = max(self.in_seq, batch.last_in)
        self._since_snapshot += len(batch.encoded)
        m = self.svc.metrics
        t = self.tenant
        if batch.inputs:
            m.inputs.labels(t).inc(batch.inputs)
        for kind, n in batch.decisions.items():
            m.decisions.labels(t, tag_of(kind)).inc(n)
        now = time.time_ns()
        hist = m.latency.labels(t)
        for stamp in batch.stamps:
            hist.observe(max(0, now - stamp) / 1e9)
        m.position.labels(t).set(self.applied_end)

    async def _ticks(self) -> None:
        interval = self.svc.config.service.tick_interval_s
        js = self.svc.js
        while True:
            await asyncio.sleep(interval)
            ts = int(time.time() * 1000)
            frame = encode_frame([encode_msgpack(Tick(tenant=self.tenant, ts=ts))])
            try:
                await js.publish(self.subjects.inputs, frame,
                                 headers={_MSG_ID: f"tick:{self.tenant}:{ts}"})  # fmt: skip
            except Exception as exc:
                _log.debug("%s: tick not published: %r", self.tenant, exc)

    async def lead(self, lease: _Lease) -> None:
        """Write the log while the lease holds; raises ``_Fenced`` if state must be rebuilt."""
        svc = self.svc
        opts = svc.config.service
        self.role = "catching up"
        await self.catch_up()
        self.log.tail_seq, self.log.end = self.applied_seq, self.applied_end
        self._next_in = self.in_seq
        self.role = "writer"
        svc.metrics.writer.labels(self.tenant).set(1)
        _log.info("%s: writing the log from position %d, inputs after %d", self.tenant,
                  self.applied_end, self.in_seq)  # fmt: skip
        cursor = Cursor(svc.nc_checked, svc.config.stream.name, self.subjects.inputs,
                        self.in_seq + 1, batch=opts.fetch_batch)  # fmt: skip
        ticker = asyncio.create_task(self._ticks()) if opts.tick_interval_s > 0 else None
        inflight: asyncio.Task[_Batch] | None = None
        group = opts.append_messages or opts.fetch_batch
        frame_bytes = self.log.max_frame_bytes
        clean = False
        try:
            while not svc.stopping.is_set() and lease.still_valid():
                msgs = await cursor.fetch(0.0 if inflight is not None else 0.25)
                svc.metrics.lag.labels(self.tenant).set(cursor.num_pending or 0)
                if not msgs:
                    if inflight is not None:
                        self._commit(await inflight)
                        inflight = None
                    if self._snapshot_due():
                        await self._snapshot()
                    continue
                todo = deque(msgs)
                while todo:
                    if self._snapshot_due():
                        if inflight is not None:
                            self._commit(await inflight)
                            inflight = None
                        await self._snapshot()
                    try:
                        batch = self._apply_messages(todo, group, frame_bytes)
                    except _Poison as poison:
                        _log.error("%s: %s; rebuilding without it", self.tenant, poison)
                        self._poison.add((poison.seq, poison.index))
                        raise _Fenced(str(poison)) from poison
                    if inflight is not None:
                        self._commit(await inflight)
                    inflight = asyncio.create_task(self._append(batch))
            if inflight is not None:
                self._commit(await inflight)
                inflight = None
            clean = True
        except LogConflictError as exc:
            svc.metrics.conflicts.labels(self.tenant).inc()
            _log.warning("%s: fenced off: %s", self.tenant, exc)
            raise _Fenced(str(exc)) from exc
        finally:
            await _cancel(inflight)
            await _cancel(ticker)
            await cursor.close()
            svc.metrics.writer.labels(self.tenant).set(0)
            self.role = "standby"
            if clean and svc.stopping.is_set() and self._since_snapshot:
                await self._snapshot(wait=True)
        if not lease.still_valid():
            # the engine may hold inputs applied after the lease lapsed and never appended
            raise _Fenced("lease lost")

    # --- the standby and the main loop ---------------------------------------------------

    async def run(self) -> None:
        svc = self.svc
        opts = svc.config.service
        await self.recover()
        assert svc.kv is not None
        lease = self.lease = _Lease(svc.kv, self.key, svc.instance, opts.lease_ttl_s)
        poll = min(1.0, max(0.05, opts.lease_ttl_s / 10))
        follower: Cursor | None = None
        self.role = "standby"
        try:
            while not svc.stopping.is_set():
                if lease.still_valid() or await lease.try_acquire():
                    if follower is not None:
                        await follower.close()
                        follower = None
                    self.takeover_at = time.time()
                    svc.metrics.takeovers.labels(self.tenant).inc()
                    _log.info("%s: lease acquired by %s", self.tenant, svc.instance)
                    try:
                        await self.lead(lease)
                    except _Fenced as exc:
                        _log.info("%s: rebuilding state (%s)", self.tenant, exc)
                        if not lease.still_valid():
                            lease.drop()
                        await self.recover(from_memory=True)
                    if svc.stopping.is_set():
                        await lease.release()
                    continue
                if follower is None:
                    follower = self.log.cursor(self.applied_seq + 1, batch=256)
                for msg in await follower.fetch(poll):
                    seq, _ = _ack_meta(msg)
                    self._apply_frame(Frame.from_msg(seq, _headers(msg), msg.data))
        finally:
            if follower is not None:
                await follower.close()
            await lease.release()
            if self._saving is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self._saving, opts.drain_timeout_s)


def _headers(msg: Msg) -> dict[str, str]:
    return {str(k): str(v) for k, v in (msg.headers or {}).items()}


# --- the service ---------------------------------------------------------------------------------


class Service:
    """``omniroute serve``: one connection, one worker per tenant; :meth:`run` until stopped."""

    def __init__(self, config: ServiceConfig, policy: Policy | None = None) -> None:
        if not config.service.tenants:
            raise ServiceError("no tenants configured ([service] tenants = [...])")
        self.config = config
        if policy is None:
            policy = load_policy(config.service.policy) if config.service.policy else Policy()
        self.policy = policy
        self.digest = policy_digest(policy)
        self.instance = config.service.instance_name
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self.hard_stop = False
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self.atomic = True
        self.snapshots: _SnapshotStore = _SnapshotStore()
        self.workers: dict[str, _Worker] = {}

    @property
    def nc_checked(self) -> Client:
        assert self.nc is not None
        return self.nc

    @property
    def js(self) -> JetStreamContext:
        return self.nc_checked.jetstream(timeout=self.config.nats.request_timeout_s)

    def request_stop(self) -> None:
        """Begin a graceful drain (what SIGTERM and SIGINT do); a second call hurries it."""
        if self.stopping.is_set():
            self.hard_stop = True
            _log.warning("stopping now")
        else:
            _log.info("stopping: draining")
        self.stopping.set()

    async def _lease_bucket(self, js: JetStreamContext) -> KeyValue:
        opts = self.config.service
        storage = StorageType.FILE if self.config.stream.storage == "file" else StorageType.MEMORY
        try:
            kv = await js.key_value(opts.lease_bucket)
            status = await kv.status()
            if abs((status.ttl or 0) - opts.lease_ttl_s) > 1e-3:
                _log.warning(
                    "lease bucket %s has TTL %s s, configured %s s: the bucket's TTL applies",
                    opts.lease_bucket, status.ttl, opts.lease_ttl_s,
                )  # fmt: skip
            return kv
        except nats.js.errors.BucketNotFoundError:
            pass
        return await js.create_key_value(
            KeyValueConfig(
                bucket=opts.lease_bucket,
                ttl=opts.lease_ttl_s,
                history=1,
                storage=storage,
                replicas=self.config.stream.replicas,
            )
        )

    async def _snapshot_store(self, js: JetStreamContext) -> _SnapshotStore:
        opts = self.config.service
        if opts.snapshots == "off":
            return _SnapshotStore()
        if opts.snapshots == "file":
            assert opts.snapshot_dir is not None
            return _FileSnapshots(Path(opts.snapshot_dir))
        try:
            store = await js.object_store(opts.snapshot_bucket)
        except nats.js.errors.BucketNotFoundError:
            store = await js.create_object_store(
                opts.snapshot_bucket,
                ObjectStoreConfig(storage=StorageType.FILE, replicas=self.config.stream.replicas),
            )
        return _ObjectStoreSnapshots(store)

    async def _gauges(self) -> None:
        interval = self.config.metrics.interval_s
        while True:
            for tenant, worker in self.workers.items():
                self.metrics.observe_state(tenant, worker.engine)
                self.metrics.position.labels(tenant).set(worker.applied_end)
            await asyncio.sleep(interval)

    async def run(self) -> int:
        """Serve until :meth:`request_stop`; 0 after a graceful stop, 1 after a failure."""
        cfg = self.config
        async with AsyncExitStack() as stack:
            if cfg.metrics.port is not None:
                port = self.metrics.serve(cfg.metrics.port, cfg.metrics.address)
                stack.callback(self.metrics.close)
                _log.info("metrics on http://%s:%d/metrics", cfg.metrics.address, port)
            self.nc = nc = await connect(cfg.nats)
            stack.push_async_callback(self._close, nc)
            js = self.js
            self.atomic = await ensure_stream(js, cfg.stream)
            self.kv = await self._lease_bucket(js)
            self.snapshots = await self._snapshot_store(js)
            self.workers = {t: _Worker(self, t) for t in cfg.service.tenants}
            _log.info("serving tenants %s as %s", ", ".join(cfg.service.tenants), self.instance)
            tasks = {
                asyncio.create_task(w.run(), name=f"tenant-{t}"): t for t, w in self.workers.items()
            }
            gauges = asyncio.create_task(self._gauges(), name="gauges")
            stop = asyncio.create_task(self._wait_stop(), name="stop")
            code = 0
            try:
                done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stop and task.exception() is not None:
                        exc = task.exception()
                        _log.error("tenant %s failed: %s", tasks[task], exc, exc_info=exc)
                        code = 1
                self.stopping.set()
                pending = [t for t in tasks if not t.done()]
                if pending:
                    _, late = await asyncio.wait(pending, timeout=cfg.service.drain_timeout_s)
                    if late:
                        self.hard_stop = True
                        for t in late:
                            t.cancel()
                        await asyncio.wait(late, timeout=5)
                for task in tasks:
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        code = 1
            finally:
                for t in (gauges, stop, *tasks):
                    t.cancel()
                await asyncio.gather(gauges, stop, *tasks, return_exceptions=True)
        return code

    async def _wait_stop(self) -> None:
        await self.stopping.wait()

    @staticmethod
    async def _close(nc: Client) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), 5)
        with contextlib.suppress(Exception):
            await nc.close()


def _dump_tasks() -> None:
    import io
    import sys

    for task in asyncio.all_tasks():
        buf = io.StringIO()
        task.print_stack(file=buf)
        sys.stderr.write(f"--- {task.get_name()}\n{buf.getvalue()}")
    sys.stderr.flush()


def serve(config: ServiceConfig, policy: Policy | None = None) -> int:
    """Run the service in this process until SIGTERM/SIGINT; the exit status."""

    import faulthandler

    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` dumps every thread's stack to stderr
        faulthandler.register(signal.SIGUSR1, all_threads=True)

    async def main() -> int:
        service = Service(config, policy)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.request_stop)
        if hasattr(signal, "SIGUSR2"):  # `kill -USR2 <pid>` dumps the asyncio tasks
            loop.add_signal_handler(signal.SIGUSR2, _dump_tasks)
        try:
            return await service.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())
