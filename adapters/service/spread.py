"""``[service] tenants = ["*"]``: any instance may serve any tenant; N instances serve about
1/N of the tenants each.

The tenants are found on the stream itself: every tenant with messages on ``P.T.in`` or
``P.T.out`` (stream info with a subjects filter, one request). No registry to keep in step:
a tenant exists once a producer has published to it, and stays while its log does.

Each instance announces itself in a KV bucket of its own (``instance_bucket``; key: the
instance name, value: its ``max_tenants``; TTL: the lease's), renewed every third of the
TTL, so every instance sees the live ones. One such interval after its first announcement
(so instances started together see each other first), and from then on every tenth of the
TTL (1 s at most), it balances (:mod:`.balance`): it claims free tenants' leases up to its
share -- each claimed tenant gets a :class:`~.worker.Worker` that restores its snapshot,
reads the log to its end and only then writes -- and hands over the tenants past its
share: the worker finishes the append in flight, saves a snapshot and releases the lease
(a frame boundary), so the instance that claims it next goes on from there. A tenant it
does not lead costs it nothing (no hot standby). When an instance dies its leases and its
announcement lapse within the TTL and the survivors with room claim its tenants. One
writer per tenant at any time: the lease, and the log's expected-sequence check behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.js.kv import KeyValue

from omniroute.engine.engine import Engine

from ..nats.options import TRANSIENT, valid_tenant
from .balance import plan
from .lease import Lease, cancel, lease_key, open_lease_bucket
from .types import Host
from .worker import Worker

__all__ = ["Spread"]

_log = logging.getLogger(__name__)


class Spread:
    """This instance's share of every tenant: claimed, led, handed over (:meth:`run`)."""

    def __init__(self, svc: Host, workers: dict[str, Worker]) -> None:
        self.svc = svc
        self.workers = workers
        """The tenants this instance leads (or is handing over), shared with the service."""
        self.instances = 1
        """Live instances seen at the last balancing round (this one included)."""
        self.share = 0
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._probes: dict[str, Lease] = {}  # (one per tenant, so a holder is logged once)

    async def run(self) -> None:
        """Announce this instance, balance until the service stops, then drain."""
        svc, opts = self.svc, self.svc.config.service
        poll = min(1.0, max(0.05, opts.lease_ttl_s / 10))
        value = msgspec.json.encode({"max_tenants": opts.max_tenants})
        try:
            bucket = await svc.health.retrying(
                lambda: open_lease_bucket(svc.js, svc.config, opts.instance_bucket),
                f"instance bucket {opts.instance_bucket}", svc.stopping.is_set,
            )  # fmt: skip
            await svc.health.retrying(lambda: bucket.put(svc.instance, value), "announcement",
                                      svc.stopping.is_set)  # fmt: skip
        except TRANSIENT:  # retried until a stop was asked for
            if svc.stopping.is_set():
                return
            raise
        announcer = asyncio.create_task(self._announce(bucket, value), name="announce")
        try:
            # one announcement interval first: instances started together see each other
            # before their first claims (none claims all, to hand most over a moment later)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(svc.stopping.wait(), opts.lease_ttl_s / 3)
            while not svc.stopping.is_set():
                self._reap()
                await self._balance(bucket)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(svc.stopping.wait(), poll)
            await cancel(announcer)
            await self._withdraw()  # the others may take what is released next
            if self._tasks:
                await asyncio.wait(self._tasks.values())
            self._reap()
        finally:
            await cancel(announcer)
            for task in self._tasks.values():
                await cancel(task)

    def _reap(self) -> None:
        """Forget the tenants whose worker ended (their gauges read 0 from now on); a
        worker's failure is the service's."""
        metrics = self.svc.metrics
        for tenant, task in list(self._tasks.items()):
            if task.done():
                del self._tasks[tenant], self.workers[tenant]
                metrics.observe_state(tenant, Engine(self.svc.policy))
                metrics.lag.labels(tenant).set(0)
                if not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc

    async def _announce(self, bucket: KeyValue, value: bytes) -> None:
        health, ttl = self.svc.health, self.svc.config.service.lease_ttl_s
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await bucket.put(self.svc.instance, value)
            except Exception as exc:  # tried again in a third of the TTL
                health.trouble("announcement", f"announcement failing: {exc!r}")
                continue
            health.clear("announcement")

    async def _withdraw(self) -> None:
        """Delete the announcement (no marker left), so the others count one less now."""
        bucket = self.svc.config.service.instance_bucket
        with contextlib.suppress(Exception):
            await self.svc.js.purge_stream(
                f"KV_{bucket}", subject=f"$KV.{bucket}.{self.svc.instance}"
            )

    async def _tenants(self) -> set[str]:
        """Every tenant with inputs or a log on the stream."""
        stream = self.svc.config.stream
        info = await self.svc.js.stream_info(stream.name, subjects_filter=f"{stream.prefix}.*.*")
        found = set()
        for subject in info.state.subjects or {}:
            tenant, _, kind = subject.removeprefix(stream.prefix + ".").rpartition(".")
            if kind in ("in", "out") and valid_tenant(tenant):
                found.add(tenant)
        return found

    async def _caps(self, bucket: KeyValue) -> dict[str, int]:
        """The live instances (this one included) and their ``max_tenants``."""
        name = self.svc.config.service.instance_bucket
        info = await self.svc.js.stream_info(f"KV_{name}", subjects_filter=f"$KV.{name}.>")
        names = {s.removeprefix(f"$KV.{name}.") for s in info.state.subjects or {}}
        caps = {self.svc.instance: self.svc.config.service.max_tenants}
        for other in sorted(names - set(caps)):
            with contextlib.suppress(Exception):  # (lapsed since the listing: not live)
                entry = await bucket.get(other)
                caps[other] = int(msgspec.json.decode(entry.value or b"{}").get("max_tenants", 0))
        return caps

    async def _balance(self, bucket: KeyValue) -> None:
        svc = self.svc
        try:
            tenants, caps = await self._tenants(), await self._caps(bucket)
        except TRANSIENT as exc:
            svc.health.trouble("spread", f"tenants not balanced: {str(exc) or type(exc).__name__}")
            return
        svc.health.clear("spread")
        handing = {t for t, w in self.workers.items() if w.leaving()}
        led = [t for t in self.workers if t not in handing]
        round_ = plan(tenants, caps, svc.instance, led, busy=handing)
        self.instances, self.share = len(caps), round_.share
        for tenant in round_.release:
            _log.info("%s: handing over (%d live instances, share %d)", tenant, len(caps),
                      round_.share)  # fmt: skip
            self.workers[tenant].hand_over()
        await self._claim(round_.claim, round_.share - len(led), f"{len(caps)} live "
                          f"instances, share {round_.share}")  # fmt: skip
        if all(caps.values()) and sum(caps.values()) < len(tenants):
            svc.health.trouble("capacity", f"{len(tenants)} tenants, but the live instances' "
                               f"max_tenants add up to {sum(caps.values())}")  # fmt: skip
        else:
            svc.health.clear("capacity")

    async def _claim(self, candidates: list[str], room: int, why: str) -> None:
        """Try the free tenants' leases in order until ``room`` are claimed; start a worker
        for each. A lease not tried this round is not a trouble of this instance."""
        svc, opts = self.svc, self.svc.config.service
        assert svc.kv is not None
        tried = set()
        for tenant in candidates:
            if room <= 0 or svc.stopping.is_set():
                break
            tried.add(tenant)
            lease = self._probes.get(tenant)
            if lease is None:
                key = lease_key(svc.config.stream.name, tenant)
                lease = self._probes[tenant] = Lease(svc.kv, key, svc.instance,
                                                     opts.lease_ttl_s, svc.health)  # fmt: skip
            if await lease.try_acquire():
                del self._probes[tenant]
                worker = self.workers[tenant] = Worker(svc, tenant)
                self._tasks[tenant] = asyncio.create_task(worker.run(lease),
                                                          name=f"tenant-{tenant}")  # fmt: skip
                _log.info("%s: claimed (%s)", tenant, why)
                room -= 1
        for tenant, lease in self._probes.items():
            if tenant not in tried:
                svc.health.clear(lease.trouble)
