"""One writer per tenant: a lease in a JetStream KV bucket, and the hot standby's wait for it.

The lease is a key whose TTL (``lease_ttl_s``) is the bucket's. The writer renews it every
third of the TTL; an instance without it is a hot standby that polls it every tenth of the
TTL. When the writer dies its lease expires and a standby takes over within the TTL. A
graceful stop releases the lease, so a standby takes over at once; a process restarted
with the same instance name takes its own lease back at once. With ``tenants = ["*"]`` the
instances claim leases of free tenants (:mod:`.spread`) instead of waiting as standbys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from ..nats.options import REFUSALS, TRANSIENT, placement, refused
from ..nats.retry import Backoff
from .config import ServiceConfig
from .health import Health

__all__ = ["Lease", "cancel", "lease_key", "open_lease_bucket"]

_log = logging.getLogger(__name__)


def lease_key(stream: str, tenant: str) -> str:
    """A tenant's key in the lease bucket (and the snapshot store): one per stream."""
    return f"{stream}.{tenant}"


class Lease:
    """One writer per tenant: a key in a KV bucket whose TTL is the lease's."""

    def __init__(
        self, kv: KeyValue, tenant: str, instance: str, ttl: float, health: Health | None = None
    ) -> None:
        self._kv = kv
        self.key = tenant
        self.trouble = f"lease {tenant}"
        """Its key in :class:`~.health.Health` while a check or renewal is failing."""
        self._health = health or Health()
        self.instance = instance
        self.ttl = ttl
        self.revision = 0
        self.held = False
        self.holder: str | None = None
        self._renewed = 0.0
        self._task: asyncio.Task[None] | None = None
        self._refused_since: float | None = None  # create refused, key gone (diagnostic)
        self._refused_warned = False
        self._overdue_warned: int | None = None  # revision of an overdue lease warned of

    def _value(self) -> bytes:
        return msgspec.json.encode(
            {"instance": self.instance, "pid": os.getpid(), "ms": int(time.time() * 1000)}
        )

    async def try_acquire(self) -> bool:
        """Take the lease if it is free (or held by this instance's earlier incarnation)."""
        if self.held:
            return True
        sent = time.monotonic()  # the TTL runs from the request (safe side), not the answer
        try:
            revision = await self._take()
        except TRANSIENT as exc:  # (a KV leader election, no connection): polled again
            _log.debug("%s: lease not checked: %r", self.key, exc)
            self._health.trouble(self.trouble, f"lease check failing for {self.key}: "
                                 f"{str(exc) or type(exc).__name__}")  # fmt: skip
            return False
        self._health.clear(self.trouble)
        if revision is None:
            return False
        self._refused_since = None
        self.revision = revision
        self.held = True
        self.holder = self.instance
        self._renewed = sent
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
            self._refused_absent()
            return None  # expired or released in between: the next poll takes it
        self._refused_since = None
        self._overdue(entry)
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

    def _refused_absent(self) -> None:
        """Diagnostic: ``create`` refused (wrong last sequence) while a read finds no key.
        Normal for a moment (a replica expired it before the leader did); for longer than
        the TTL the bucket's leader refuses writes to a key it no longer holds."""
        now = time.monotonic()
        if self._refused_since is None:
            self._refused_since, self._refused_warned = now, False
        elif not self._refused_warned and now - self._refused_since > self.ttl:
            self._refused_warned = True
            _log.warning(
                "%s: lease create refused for %.1f s though the key reads as gone: the lease "
                "bucket's leader still refuses it", self.key, now - self._refused_since,
            )  # fmt: skip

    def _overdue(self, entry: KeyValue.Entry) -> None:
        """Diagnostic: warn (once per revision) of a lease whose last renewal is older than
        twice the TTL: the bucket (its ``max_age``) has not expired it."""
        try:
            ms = msgspec.json.decode(entry.value or b"{}").get("ms")
        except (msgspec.DecodeError, AttributeError):
            return
        if not isinstance(ms, int) or entry.revision == self._overdue_warned:
            return
        age = time.time() - ms / 1000
        if age > 2 * self.ttl:
            self._overdue_warned = entry.revision
            _log.warning(
                "%s: lease of %s last renewed %.1f s ago (revision %s), TTL %.1f s: the lease "
                "bucket has not expired it", self.key, _holder(entry.value), age,
                entry.revision, self.ttl,
            )  # fmt: skip

    async def _renew_loop(self) -> None:
        """Renew every third of the TTL; after a failure (a lease bucket leader election, a
        lost connection) sooner, with backoff, until the TTL since the last renewal sent
        has passed. A renewal whose acknowledgement was lost is recognised by its value."""
        backoff = Backoff(f"renew {self.key}", first=self.ttl / 20, cap=self.ttl / 6)
        unacked: tuple[bytes, float] | None = None  # the last renewal not acknowledged
        while self.held:
            await asyncio.sleep(backoff.next() if backoff.attempt else self.ttl / 3)
            sent, value = time.monotonic(), self._value()
            try:
                self.revision = await self._kv.update(self.key, value, last=self.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                if unacked is not None and await self._landed(unacked[0]):
                    self._renewed, unacked = unacked[1], None  # stored after all: go on
                    continue
                _log.warning("%s: lease lost (taken over or expired)", self.key)
                self.held = False
                continue
            except Exception as exc:
                unacked = (value, sent)
                self._health.trouble(self.trouble, f"lease renew failing for {self.key}: "
                                     f"{str(exc) or type(exc).__name__}")  # fmt: skip
                if time.monotonic() - self._renewed > self.ttl:
                    _log.warning("%s: lease not renewed for %.1f s (%r)", self.key, self.ttl, exc)
                    self.held = False
                continue
            self._renewed, unacked = sent, None
            backoff.reset()
            self._health.clear(self.trouble)

    async def _landed(self, value: bytes) -> bool:
        """Whether the key holds ``value`` (then its revision is taken as the lease's)."""
        try:
            entry = await self._kv.get(self.key)
        except Exception:
            return False
        if entry.value != value or entry.revision is None:
            return False
        self.revision = entry.revision
        return True

    def still_valid(self) -> bool:
        """Held and renewed within the TTL (a writer cut off from NATS stops by itself)."""
        if self.held and time.monotonic() - self._renewed > self.ttl:
            self.held = False
        return self.held

    async def release(self) -> None:
        task, self._task = self._task, None
        await cancel(task)
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


async def cancel(task: asyncio.Task[object] | None, timeout: float = 5.0) -> None:
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


async def open_lease_bucket(
    js: JetStreamContext, config: ServiceConfig, bucket: str | None = None
) -> KeyValue:
    """The KV bucket of the leases (TTL ``lease_ttl_s``), created if missing; or, named
    ``bucket``, another with their TTL and replicas (the instances' announcements)."""
    opts = config.service
    name = bucket or opts.lease_bucket
    storage = StorageType.FILE if config.stream.storage == "file" else StorageType.MEMORY
    replicas = config.lease_replicas
    try:
        kv = await js.key_value(name)
        status = await kv.status()
        if abs((status.ttl or 0) - opts.lease_ttl_s) > 1e-3:
            _log.warning(
                "bucket %s has TTL %s s, configured %s s: the bucket's TTL applies",
                name, status.ttl, opts.lease_ttl_s,
            )  # fmt: skip
        if (status.stream_info.config.num_replicas or 1) != replicas:
            _log.warning(
                "bucket %s has %s replica(s), configured %d: the bucket's apply",
                name, status.stream_info.config.num_replicas, replicas,
            )  # fmt: skip
        return kv
    except nats.js.errors.BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name,
                ttl=opts.lease_ttl_s,
                history=1,
                storage=storage,
                replicas=replicas,
                placement=placement(config.stream),
            )
        )
    except (nats.js.errors.BadRequestError, nats.js.errors.ServerError) as exc:
        if exc.err_code in REFUSALS:
            raise refused(exc, "service.lease_replicas", replicas) from exc
        raise
