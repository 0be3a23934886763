"""``omniroute serve``: the log -> Engine -> log loop over NATS JetStream.

Per tenant ``T`` (subjects of :mod:`omniroute.adapters.nats.options`, prefix ``P``),
producers publish inputs to ``P.T.in`` (:mod:`.inputs`); the instance holding T's lease
(:mod:`.lease`) writes the log ``P.T.out`` (:mod:`.writer`), the others follow it as hot
standbys (:mod:`.worker`) -- or, with ``tenants = ["*"]``, each instance leads its share of
every tenant and follows none (:mod:`.spread`); snapshots (:mod:`.snapshots`) make
restarts quick. A ``Nats-Msg-Id`` makes the server drop a re-published input within the
stream's duplicate window; an event ``id`` makes the engine skip a repeated event beyond
it. ``omniroute replay`` verifies the log like a file log.

:class:`Service` owns the connection (one per process, in an ``AsyncExitStack``), the
lease bucket, the snapshot store, the metrics endpoint and one worker per tenant served.
:func:`serve` runs it until SIGTERM/SIGINT: a graceful stop finishes the append in
flight, saves a snapshot and releases the lease, so a standby takes over at once.

Server restarts and cluster fail-overs: the connection reconnects forever (to any server
of ``[nats] servers``); input and log cursors re-create their consumers at their own
positions; appends that cannot be acknowledged are retried with the same message id until
they are, or the lease is lost; every other JetStream request (stream, lease bucket,
snapshot store, the log's frames) is retried through transient errors (leader elections,
no responders, timeouts; :mod:`omniroute.adapters.nats.retry`) while the service reports
itself ``degraded`` (:mod:`.health`). It exits only on a configuration error (exit 2: the
message names the key) or a condition it names (:class:`~.worker.ServiceError`: a replay
mismatch, a log whose frames expired under its snapshot). The loop is single-threaded
asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from omniroute.engine.policy import Policy, load_policy

from ..nats.options import (
    TRANSIENT,
    PlacementError,
    check_replicas,
    cluster_servers,
    connect,
    ensure_stream,
)
from .config import ServiceConfig
from .health import Health
from .lease import open_lease_bucket
from .metrics import Metrics
from .snapshots import SnapshotStore, open_snapshot_store, policy_digest
from .spread import Spread
from .worker import ServiceError, Worker

__all__ = ["Service", "serve"]

_log = logging.getLogger(__name__)

_FORMING_S = 30.0
"""How long a refused placement is tried again while the cluster may still be forming."""


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
        self.metrics = Metrics(policy)
        self.health = Health()
        self.stopping = asyncio.Event()
        self.hard_stop = False
        self.nc: Client | None = None
        self.kv: KeyValue | None = None
        self.atomic = True
        self.snapshots: SnapshotStore = SnapshotStore()
        self.workers: dict[str, Worker] = {}
        self.spread: Spread | None = None

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

    def health_report(self) -> dict[str, object]:
        """``/health``: ok or degraded (with the reasons), and each tenant's role here."""
        report = self.health.report()
        report["instance"] = self.instance
        report["tenants"] = {t: w.role for t, w in sorted(self.workers.items())}
        if self.spread is not None:
            report["instances"] = self.spread.instances
            report["share"] = self.spread.share
        return report

    async def _gauges(self) -> None:
        interval = self.config.metrics.interval_s
        while True:
            for tenant, worker in self.workers.items():
                self.metrics.observe_state(tenant, worker.engine)
                self.metrics.position.labels(tenant).set(worker.applied_end)
            self.metrics.tenants_led.set(sum(w.role == "writer" for w in self.workers.values()))
            self.metrics.degraded.set(1 if self.health.degraded else 0)
            await asyncio.sleep(interval)

    async def _disconnected(self) -> None:
        self.health.trouble("nats", "nats disconnected")

    async def _reconnected(self) -> None:
        self.health.clear("nats")

    async def _start(self) -> None:
        """Connect; check the replicas against the cluster; open the stream, the lease
        bucket and the snapshot store, retrying each through transient errors."""
        cfg = self.config
        self.nc = nc = await connect(
            cfg.nats, disconnected_cb=self._disconnected, reconnected_cb=self._reconnected
        )
        check_replicas(nc, cfg.replicas())
        servers = cluster_servers(nc)
        if servers:
            _log.info("JetStream cluster of %d server(s) up: %s", len(servers), ", ".join(servers))
        js = self.js
        give_up = self.stopping.is_set
        forming_until = time.monotonic() + _FORMING_S
        try:
            while not await self._open(js, give_up, time.monotonic() < forming_until):
                await asyncio.sleep(1.0)
        finally:
            self.health.clear("placement")

    async def _open(self, js: JetStreamContext, give_up: Callable[[], bool], patient: bool) -> bool:
        """Open the stream, the lease bucket and the snapshot store, each retried through
        transient errors. False: the cluster refused a placement it may still be forming
        for (``patient``, see :meth:`_forming`); any other refusal is a
        :class:`PlacementError`."""
        cfg = self.config
        try:
            self.atomic = await self.health.retrying(
                lambda: ensure_stream(js, cfg.stream), f"stream {cfg.stream.name}", give_up
            )
            self.kv = await self.health.retrying(
                lambda: open_lease_bucket(js, cfg), f"lease bucket {cfg.service.lease_bucket}",
                give_up,
            )  # fmt: skip
            self.snapshots = await self.health.retrying(
                lambda: open_snapshot_store(js, cfg), "snapshot store", give_up
            )
        except PlacementError as exc:
            servers = cluster_servers(self.nc_checked)
            if not (patient and self._forming(servers)):
                raise PlacementError(
                    f"{exc} (the cluster has {len(servers)} server(s) up: {', '.join(servers)})"
                ) from exc
            self.health.trouble("placement", f"cluster cannot place yet: {exc}")
            _log.warning("%s; the cluster may still be forming: trying again", exc)
            return False
        return True

    def _forming(self, servers: list[str]) -> bool:
        """Whether a refused placement may be a cluster still forming (its servers up but
        not yet known to its meta leader) rather than a configuration error: enough servers
        are up for every replica count and no placement narrows where replicas go."""
        stream = self.config.stream
        if stream.placement_tags or stream.placement_cluster:
            return False
        return len(servers) >= max(self.config.replicas().values())

    async def run(self) -> int:
        """Serve until :meth:`request_stop`; 0 after a graceful stop, 1 after a failure."""
        cfg = self.config
        async with AsyncExitStack() as stack:
            if cfg.metrics.port is not None:
                port = self.metrics.serve(cfg.metrics.port, cfg.metrics.address,
                                          health=self.health_report)  # fmt: skip
                stack.callback(self.metrics.close)
                _log.info("metrics on http://%s:%d/metrics (and /health)", cfg.metrics.address,
                          port)  # fmt: skip
            stack.push_async_callback(self._close)
            try:
                await self._start()
            except TRANSIENT:  # retried until a stop was asked for
                if self.stopping.is_set():
                    return 0
                raise
            _log.info("serving tenants %s as %s", ", ".join(cfg.service.tenants), self.instance)
            tasks = self._tasks()
            gauges = asyncio.create_task(self._gauges(), name="gauges")
            stop = asyncio.create_task(self._wait_stop(), name="stop")
            code = 0
            try:
                done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stop and task.exception() is not None:
                        exc = task.exception()
                        _log.error("%s failed: %s", tasks[task], exc, exc_info=exc)
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

    def _tasks(self) -> dict[asyncio.Task[None], str]:
        """The tasks that serve the tenants, each with what it serves: one per configured
        tenant, or (``tenants = ["*"]``) the spread of every tenant over the instances."""
        if self.config.service.spread:
            self.spread = Spread(self, self.workers)
            return {asyncio.create_task(self.spread.run(), name="spread"): "tenant spread"}
        self.workers.update((t, Worker(self, t)) for t in self.config.service.tenants)
        return {asyncio.create_task(w.run(), name=f"tenant-{t}"): f"tenant {t}"
                for t, w in self.workers.items()}  # fmt: skip

    async def _wait_stop(self) -> None:
        await self.stopping.wait()

    async def _close(self) -> None:
        nc = self.nc
        if nc is None:
            return
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
