"""One tenant: its engine kept equal to its log, as hot standby or (with the lease) writer.

On start the snapshot is restored (when the log still holds the frame it names and the
policy digest matches; when the stream's retention dropped that frame the tenant cannot be
rebuilt and the service stops saying so), the log is read forward from it -- the service's
own earlier decisions included, each re-decided and checked byte for byte by a
:class:`~omniroute.engine.verify.Verifier` -- and inputs are consumed after the last one
the log records. Nothing is decided twice, nothing skipped. Without the lease the worker
follows the log, applying frames as they are appended; with it, its :class:`.Writer`
writes. If a stale writer ever races the new one, the expected-sequence check refuses its
append; it rebuilds from its snapshot and the log, and becomes a standby when its lease is
gone. A worker of a tenant claimed by :mod:`.spread` is never a standby: it ends when its
lease is lost, or once handed over (:meth:`Worker.hand_over`: the graceful stop's path,
for one tenant).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec

from omniroute.engine.engine import Engine
from omniroute.engine.events import decode_msgpack, is_decision
from omniroute.engine.state import STATE_VERSION
from omniroute.engine.verify import Mismatch, Verifier

from ..nats.asynclog import AsyncNatsLog
from ..nats.cursor import Cursor, ack_meta
from ..nats.frames import HEADER_IN, Frame, plain_headers
from ..nats.options import Subjects
from .lease import Lease, lease_key
from .snapshots import Snapshot
from .writer import Fenced, Quarantined, Writer

if TYPE_CHECKING:
    from .types import Host

__all__ = ["ServiceError", "Worker"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


class ServiceError(Exception):
    """The service cannot go on (a replay mismatch with ``on_mismatch = "stop"``, a log
    whose start has expired without a snapshot, a snapshot whose log frame has expired, a
    configuration the server refuses)."""


class Worker:
    """Engine, lease and log of one tenant; writer or hot standby."""

    def __init__(self, service: Host, tenant: str) -> None:
        self.svc = service
        self.tenant = tenant
        self.key = lease_key(service.config.stream.name, tenant)
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
        self.verifier = Verifier(self.engine)
        self._snap: Snapshot | None = None
        self.since_snapshot = 0
        self._snapshot_at = time.monotonic()
        self._saving: asyncio.Task[None] | None = None
        self.lease: Lease | None = None
        self.takeover_at: float | None = None
        self._handing_over = False
        self.writer = Writer(self)

    def leaving(self) -> bool:
        """The service is stopping, or this tenant is being handed over: finish the append
        in flight, snapshot, release the lease."""
        return self._handing_over or self.svc.stopping.is_set()

    def hand_over(self) -> None:
        """Stop leading at the next frame boundary and release the lease (:meth:`run` ends)."""
        self._handing_over = True
        self.role = "handing over"

    def _mismatch(self, where: str, mismatch: Mismatch) -> None:
        self.svc.metrics.mismatches.labels(self.tenant).inc()
        text = f"{self.subjects.out}: {where}, log position {mismatch.position}: {mismatch.reason}"
        if self.svc.config.service.on_mismatch == "stop":
            raise ServiceError(text + ' (on_mismatch = "stop")')
        _log.error("%s; going on with the recomputed state", text)
        self.verifier.reset()

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
        verifier = self.verifier
        where = f"frame at stream sequence {frame.seq}"
        for position, raw in enumerate(frame.events(), frame.pos):
            event = decode_msgpack(raw)
            if is_decision(event):
                if mismatch := verifier.decision(position, raw, event):
                    self._mismatch(where, mismatch)
                continue
            if mismatch := verifier.unmatched(position):
                self._mismatch(where, mismatch)
            verifier.apply(position, event)
        self.applied_seq, self.applied_end = frame.seq, frame.end
        if (value := frame.headers.get(HEADER_IN)) is not None:
            self.in_seq = max(self.in_seq, int(value))
        self.since_snapshot += frame.count
        self.svc.metrics.position.labels(self.tenant).set(self.applied_end)

    async def _retrying(self, call: Callable[[], Awaitable[_T]], what: str) -> _T:
        """``call()`` retried through transient cluster errors until the service stops."""
        return await self.svc.health.retrying(call, f"{what} of {self.tenant}",
                                              self.svc.stopping.is_set)  # fmt: skip

    async def _last_frame(self) -> Frame | None:
        return await self._retrying(self.log.last_frame, "the log's last frame")

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
                        seq, _ = ack_meta(msg)
                        if seq > last.seq:
                            break
                        self._apply_frame(Frame.from_msg(seq, plain_headers(msg.headers), msg.data))
            finally:
                await cursor.close()
        if mismatch := self.verifier.unmatched(self.applied_end, at_end=True):
            self._mismatch("the log's end", mismatch)

    async def recover(self, from_memory: bool = False) -> None:
        """Rebuild the engine: restore the snapshot, then read the log forward."""
        snap = self._snap if from_memory else None
        if snap is None:
            snap = await self._load_snapshot()
        self.engine = Engine(self.svc.policy)
        self.applied_seq = self.applied_end = self.in_seq = 0
        restored = None
        if snap is not None and await self._usable(snap):
            try:
                restored = Engine.restore(snap.engine, self.svc.policy)
            except Exception as exc:  # a snapshot that cannot be restored: the log has it all
                _log.warning("%s: the snapshot cannot be restored (%r); reading the whole log",
                             self.tenant, exc)  # fmt: skip
        if snap is not None and restored is not None:
            self.engine = restored
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
        self.verifier = Verifier(self.engine)
        self.since_snapshot = 0
        self._snapshot_at = time.monotonic()
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
            data = await self._retrying(lambda: self.svc.snapshots.load(self.key), "snapshot")
        except Exception as exc:
            _log.warning("%s: cannot load the snapshot (%r); reading the whole log", self.tenant,
                         exc)  # fmt: skip
            return None
        if data is None:
            return None
        try:
            return Snapshot.decode(data)
        except msgspec.DecodeError as exc:
            _log.warning("%s: unreadable snapshot (%s); reading the whole log", self.tenant, exc)
            return None

    async def _usable(self, snap: Snapshot) -> bool:
        if snap.tenant != self.tenant:
            _log.warning("%s: snapshot is of tenant %r; ignored", self.tenant, snap.tenant)
            return False
        if snap.version != STATE_VERSION:
            _log.warning(
                "%s: snapshot is of engine state version %d, not %d; ignored",
                self.tenant, snap.version, STATE_VERSION,
            )  # fmt: skip
            return False
        if snap.policy_digest != self.svc.digest:
            _log.warning("%s: snapshot was made under another policy; ignored", self.tenant)
            return False
        if snap.out_seq == 0:
            return snap.out_end == 0
        frame = await self._retrying(lambda: self.log.get_frame(snap.out_seq), "snapshot frame")
        if frame is None:
            await self._check_not_expired(snap)
        if frame is None or frame.end != snap.out_end:
            _log.warning(
                "%s: snapshot names log position %d at stream sequence %d, which the log does "
                "not hold; ignored", self.tenant, snap.out_end, snap.out_seq,
            )  # fmt: skip
            return False
        return True

    async def _check_not_expired(self, snap: Snapshot) -> None:
        """Raise ``ServiceError`` when the stream's retention dropped the snapshot's frame
        (then neither the snapshot nor the log can rebuild the tenant)."""
        name = self.svc.config.stream.name
        info = await self._retrying(lambda: self.svc.js.stream_info(name), "stream info")
        first = info.state.first_seq
        if snap.out_seq >= first:
            return  # not expired: another stream's snapshot, or the subject was purged
        cfg = info.config
        raise ServiceError(
            f"{self.subjects.out}: the snapshot of tenant {self.tenant} names the log frame at "
            f"stream sequence {snap.out_seq} (log position {snap.out_end}), which stream {name} "
            f"no longer holds: it starts at sequence {first}, the frame was dropped by its "
            f"retention (max_age {cfg.max_age or 0:g} s, max_bytes {cfg.max_bytes}) or a purge. "
            "The log can no longer rebuild this tenant's state: restore the stream from a "
            "backup, and keep retention above the documented minimum (stream.max_age_s, "
            "max_bytes) with a writer running"
        )

    # --- snapshots ------------------------------------------------------------------------

    def snapshot_due(self) -> bool:
        """``snapshot_every`` events logged since the last snapshot, or some logged and
        ``snapshot_interval_s`` passed."""
        opts = self.svc.config.service
        if opts.snapshot_every and self.since_snapshot >= opts.snapshot_every:
            return True
        interval = opts.snapshot_interval_s
        return bool(interval and self.since_snapshot) and (
            time.monotonic() - self._snapshot_at >= interval
        )

    async def save_snapshot(self, wait: bool = False) -> None:
        """Snapshot the engine (state == the log up to ``applied_seq``) and save it (with
        ``snapshots = "off"`` it is only kept in memory, for rebuilds)."""
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
        self.since_snapshot = 0
        self._snapshot_at = time.monotonic()
        if self.svc.config.service.snapshots == "off":
            return
        self._saving = asyncio.create_task(self._save(snap))
        if wait:
            await self._saving

    async def _save(self, snap: Snapshot) -> None:
        health, data = self.svc.health, msgspec.msgpack.encode(snap)
        try:
            await self._retrying(lambda: self.svc.snapshots.save(self.key, data), "snapshot save")
        except Exception as exc:  # not transient (or stopping): the next snapshot is another try
            _log.warning("%s: snapshot not saved: %r", self.tenant, exc)
            health.trouble(f"snapshot {self.tenant}", f"snapshot of {self.tenant} not saved: "
                           f"{str(exc) or type(exc).__name__}")  # fmt: skip
            return
        health.clear(f"snapshot {self.tenant}")
        self.svc.metrics.snapshots.labels(self.tenant).inc()
        _log.debug("%s: snapshot saved at log position %d", self.tenant, snap.out_end)

    async def run(self, claimed: Lease | None = None) -> None:
        """Without ``claimed``: a hot standby until this instance acquires the tenant's
        lease, then its writer, until the service stops. With ``claimed`` (a lease held,
        :mod:`.spread`): its writer once recovered, until the lease is lost or handed over."""
        svc = self.svc
        opts = svc.config.service
        assert svc.kv is not None
        lease = self.lease = claimed or Lease(
            svc.kv, self.key, svc.instance, opts.lease_ttl_s, svc.health
        )
        poll = min(1.0, max(0.05, opts.lease_ttl_s / 10))
        follower: Cursor | None = None
        try:
            await self.recover()
            self.role = "standby"
            while not self.leaving():
                if lease.still_valid() or (claimed is None and await lease.try_acquire()):
                    if follower is not None:
                        await follower.close()
                        follower = None
                    self.takeover_at = time.time()
                    svc.metrics.takeovers.labels(self.tenant).inc()
                    _log.info("%s: lease acquired by %s", self.tenant, svc.instance)
                    try:
                        await self.writer.lead(lease)
                    except Fenced as exc:
                        if not lease.still_valid():
                            lease.drop()
                            if claimed is not None:
                                break  # lost: the service may claim the tenant again
                        _log.info("%s: rebuilding state (%s)", self.tenant, exc)
                        await self.recover(from_memory=True)
                        if isinstance(exc, Quarantined):  # the next rebuild starts from here
                            await self.save_snapshot()
                    if self.leaving():
                        await lease.release()
                    continue
                if claimed is not None:
                    break
                if follower is None:
                    follower = self.log.cursor(self.applied_seq + 1, batch=256)
                for msg in await follower.fetch(poll):
                    seq, _ = ack_meta(msg)
                    self._apply_frame(Frame.from_msg(seq, plain_headers(msg.headers), msg.data))
        finally:
            if follower is not None:
                await follower.close()
            await lease.release()
            if self._saving is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(self._saving, opts.drain_timeout_s)
