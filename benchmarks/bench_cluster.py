"""``omniroute serve`` on a 3-node JetStream cluster (R3): events/s with 1 and 3 instances over
6 tenants, and how long the tenants' logs stall when a node or an instance is killed.

Set-up. Three routed ``nats-server`` nodes on loopback (``LocalNatsCluster``, JetStream in a
temporary folder); the stream, the lease KV bucket and the snapshot object store at 3
replicas. Six tenants ``t1``..``t6``, each with its own seeded input stream: the closed-loop
contact-centre workload of ``benchmarks/bench_nats.py`` (``workload``: agents registering and
going away, conversations on every channel arriving, offered, accepted or declined,
messages, ends, wrap-ups, abandons), every event given a unique id ``<tenant>-<n>``. The
service runs as real ``omniroute serve`` child processes (one configuration file each).

Throughput. Each tenant's inputs are published first, in frames of ``--frame-events``
events, to a fresh stream; then the instances start:

- ``events_per_s_1_instance``: one instance serving all six tenants;
- ``events_per_s_3_instances``: three instances, each serving two tenants (static tenant
  lists in their configurations; with ``--spread``: each configured with ``tenants =
  ["*"]``, the service spreading them), the same inputs in a stream of their own;

events are inputs + decisions appended to the six logs, divided by the wall time from the
moment the first instance holds a lease and starts writing (its log line "writing the
log", as ``bench_nats.py`` starts its clock: process start-up is not timed) to the stream
timestamp of the frame by which the last tenant's log covers all its inputs (a frame's
``Omniroute-In`` header). ``scale_3_over_1`` is their ratio. With them: the CPU seconds the
instances (start-up included) and the nats-server nodes used, ``start_skew_s`` (how much
later than the first the last instance started writing: processes starting on a busy
box) and each instance's own events/s over its own span (the tenants whose last frame it
wrote, from its first "writing the log").

Fail-over (wall clock, observed by polling every tenant's last log frame every ~20 ms from a
connection to a node that is not killed). A third stream; three instances write two tenants
each and a fourth, a hot standby, is configured with all six; inputs keep flowing
(``--rate`` inputs/s per tenant in frames of ``--flow-frame-events``, each published until
acknowledged under a ``Nats-Msg-Id``, so a retry is de-duplicated by the server):

- ``resume_s``: ``--kills`` times (``--quick``: 2, else 5), ``kill -9`` the node leading the
  stream; the seconds from the kill until every tenant's log has appended again (while the
  stream has no leader no input can be stored either, so this is the cluster's election
  plus the service's and the producer's recovery). The node is then restarted and the
  cluster waits until the stream's and the lease bucket's replicas are current before the
  next kill. ``node_kills_also_lease_leader``: how many of those nodes led the lease
  bucket too (then leases may lapse and tenants change hands);
- ``resume_follower_s``: ``--follower-kills`` times (as many as ``--kills`` unless given),
  the same with a node that leads neither the stream nor the lease bucket: no election,
  only the clients connected to it (instances, producer) reconnecting to the others;
- ``takeover_s``: ``--instance-kills`` times, ``kill -9`` the instance writing the most
  tenants; the seconds from the kill until each of its tenants' logs has a frame by another
  writer (its hot standby, after the lease of ``lease_ttl_s`` lapsed; ``--lease-ttl``,
  5 s here, production's default is 10 s). The killed instance is restarted (it becomes a
  standby) and, like the standby at the start, waited for until its ``/health`` (each
  instance has a metrics port) reports every one of its tenants ``standby`` or ``writer``:
  it has replayed their logs (until then ``starting``) and can take over, so the next kill
  is not measured against an instance still recovering;

reported as p50 and max. Afterwards the flow stops, the logs catch up, and every log of the
three streams is audited: ``lost`` (an input id published but not in its tenant's log),
``duplicated`` (an input id in a log more than once), ``unexpected`` (in a log, never
published); ``deterministic``: a clean replay of every fail-over log re-decides every
recorded decision byte for byte.

The machine may be shared: ``cores`` and ``load_avg_1m`` (before and after) are reported;
on a 2-core box, 3 instances and 3 nats-server nodes compete for the same two cores.

Usage::

    python benchmarks/bench_cluster.py [--quick] [--json] [--events N] [--kills N]
                                       [--follower-kills N] [--instance-kills N]
                                       [--lease-ttl S] [--rate N] [--frame-events N]
                                       [--spread] [--keep DIR] [--seed N]

``--quick``: 15,000 inputs per tenant, 2 stream-leader kills, 2 follower kills and 2
instance kills (about 2 minutes); the default is 60,000 inputs per tenant, 5, 5 and 5. One
JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from omniroute.adapters.nats.asynclog import AsyncNatsLog
from omniroute.adapters.nats.cluster import LocalNatsCluster
from omniroute.adapters.nats.frames import HEADER_IN, HEADER_WRITER, MSG_ID, Frame, plain_headers
from omniroute.adapters.nats.log import NatsLog
from omniroute.adapters.nats.options import (
    NatsOptions,
    PlacementError,
    StreamOptions,
    connect,
    ensure_stream,
)
from omniroute.adapters.nats.server import LocalNatsServer, free_port
from omniroute.engine.events import encode_msgpack, is_decision
from omniroute.engine.log import encode_frame
from omniroute.engine.replay import replay

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the sibling benchmark scripts
if str(HERE.parent) not in sys.path:  # ``tests.support`` from a checkout
    sys.path.append(str(HERE.parent))

from bench_nats import workload  # noqa: E402

from tests.support.cluster import roles  # noqa: E402
from tests.support.service import ServeProcess, config_toml, cpu_seconds  # noqa: E402

TENANTS = tuple(f"t{k}" for k in range(1, 7))
REPLICAS = 3
LEASES = "bench_leases"
SNAPSHOTS = "bench_snapshots"
TARGETS = {"scale_3_over_1": 2.0, "resume_p50_s": 5.0, "resume_max_s": 12.0,
           "takeover_over_lease_ttl_s": 1.0}  # fmt: skip
"""Issue 18's "done when" (take-over: at most the lease TTL + 1 s)."""


# --- inputs ------------------------------------------------------------------------------


def _eid(tenant: str, i: int) -> str:
    return f"{tenant}-{i}"


def _tenant_inputs(job: tuple[str, int, int, int]) -> list[bytes]:
    """One tenant's encoded inputs: ``workload`` re-addressed to the tenant, ids unique."""
    tenant, n, seed, agents = job
    return [
        encode_msgpack(msgspec.structs.replace(event, tenant=tenant, id=_eid(tenant, i)))
        for i, event in enumerate(workload(n, seed, agents))
    ]


def generate(n: int, seed: int, agents: int) -> dict[str, list[bytes]]:
    """Every tenant's encoded inputs (tenants generated in parallel processes)."""
    jobs = [(t, n, seed + k, agents) for k, t in enumerate(TENANTS)]
    with ProcessPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1)) as pool:
        return dict(zip(TENANTS, pool.map(_tenant_inputs, jobs), strict=True))


def framed(encoded: Sequence[bytes], size: int) -> list[bytes]:
    return [encode_frame(encoded[i : i + size]) for i in range(0, len(encoded), size)]


# --- the cluster and the instances -------------------------------------------------------


def instance_config(
    workdir: Path, urls: Sequence[str], stream: StreamOptions, name: str,
    tenants: Sequence[str], lease_ttl_s: float, metrics_port: int | None = None,
) -> Path:  # fmt: skip
    """Write ``NAME.toml``, a ``serve`` configuration: stream, lease bucket and snapshot
    store at R3, no Ticks (the inputs move the clocks). The buckets are shared by the three
    streams (their keys are per stream and tenant), so only the first phase creates them:
    instances starting together on a bucket just created wait for it (a request timeout,
    ~5 s), which is start-up, not throughput."""
    path = workdir / f"{name}.toml"
    path.write_text(config_toml(
        urls, stream, tenants, instance=name, extra_nats="connect_timeout_s = 1.0",
        extra_service=(f"tick_interval_s = 0\nlease_ttl_s = {lease_ttl_s}\n"
                       f'lease_bucket = "{LEASES}"\nsnapshot_bucket = "{SNAPSHOTS}"'),
        metrics_port=metrics_port,
    ))  # fmt: skip
    return path


def stop_all(fleet: dict[str, ServeProcess]) -> dict[str, int]:
    """SIGTERM every instance and wait (SIGKILL after 20 s); their exit statuses."""
    codes = {}
    for name, instance in fleet.items():
        try:
            codes[name] = instance.terminate()
        except AssertionError:  # killed after 20 s
            codes[name] = instance.proc.returncode
    return codes


# --- reading the logs --------------------------------------------------------------------

Tails = dict[str, tuple[int, str]]
"""Per tenant: (log end position, writer of its last frame)."""


async def _tails(nc: Any, stream: StreamOptions, tenants: Sequence[str]) -> Tails:
    """The tenants' log tails now; a tenant the cluster does not answer for is left out."""

    async def one(tenant: str) -> tuple[int, str] | None:
        frame = await AsyncNatsLog(nc, stream, tenant, timeout=1.0).last_frame()
        return (0, "") if frame is None else (frame.end, frame.headers.get(HEADER_WRITER, ""))

    found = await asyncio.gather(*(one(t) for t in tenants), return_exceptions=True)
    return {t: f for t, f in zip(tenants, found, strict=True) if isinstance(f, tuple)}


async def _stamped(js: Any, stream: StreamOptions, tenant: str) -> tuple[Frame, float]:
    """The last frame of the tenant's log and its stream timestamp (epoch seconds)."""
    raw = await js.get_msg(stream.name, subject=stream.subjects(tenant).out, direct=True)
    frame = Frame.from_msg(raw.seq, plain_headers(raw.headers), raw.data or b"")
    return frame, raw.time.timestamp()


async def _until_covered(
    opts: NatsOptions, stream: StreamOptions, last_in: dict[str, int],
    fleet: Sequence[ServeProcess],
    timeout: float,
) -> dict[str, tuple[float, int, str]]:  # fmt: skip
    """Wait until every tenant's log covers its inputs up to ``last_in``; per tenant, the
    stream timestamp of the frame that covers them, the events in its log up to it and
    the instance that wrote it."""
    nc = await connect(opts)
    try:
        js = nc.jetstream(timeout=5)
        deadline = time.monotonic() + timeout
        covered: dict[str, tuple[Frame, float]] = {}
        while len(covered) < len(last_in):
            for instance in fleet:
                instance.check_alive()
            if time.monotonic() > deadline:
                missing = sorted(set(last_in) - set(covered))
                raise RuntimeError(f"logs of {missing} not covering their inputs in {timeout} s")
            await asyncio.sleep(0.1)
            for tenant, seq in last_in.items():
                if tenant not in covered:
                    try:
                        frame, at = await _stamped(js, stream, tenant)
                    except Exception:  # not logged yet, or an election
                        continue
                    if int(frame.headers.get(HEADER_IN, "0")) >= seq:
                        covered[tenant] = frame, at
        return {t: (at, f.end, f.headers.get(HEADER_WRITER, "")) for t, (f, at) in covered.items()}
    finally:
        await nc.close()


def audit(
    opts: NatsOptions, stream: StreamOptions, published: dict[str, int], check_replay: bool
) -> dict[str, int]:
    """Input ids in each tenant's log against ids ``<tenant>-0..n-1`` published."""
    counts = Counter({"lost": 0, "duplicated": 0, "unexpected": 0, "replay_failures": 0})
    for tenant, n in published.items():
        with NatsLog(opts, tenant, stream, readonly=True) as log:
            seen = Counter(e.id for _, e in log.read() if not is_decision(e) and e.id is not None)
            if check_replay and not replay(log).ok:
                counts["replay_failures"] += 1
        wanted = {_eid(tenant, i) for i in range(n)}
        counts["lost"] += len(wanted - seen.keys())
        counts["duplicated"] += sum(c - 1 for c in seen.values() if c > 1)
        counts["unexpected"] += len(seen.keys() - wanted)
    return dict(counts)


# --- throughput --------------------------------------------------------------------------


async def prepublish(
    opts: NatsOptions, stream: StreamOptions, frames: dict[str, list[bytes]]
) -> dict[str, int]:
    """Publish every tenant's input frames (interleaved, acknowledged); the last input
    stream sequence of each tenant."""
    nc = await connect(opts)
    try:
        js = nc.jetstream(timeout=30)
        deadline = time.monotonic() + 30
        while True:  # a cluster just started may not know all its peers yet
            try:
                await ensure_stream(js, stream)
                break
            except PlacementError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        order = [(t, f) for k in range(max(map(len, frames.values())))
                 for t, fs in frames.items() if k < len(fs) for f in [fs[k]]]  # fmt: skip
        last: dict[str, int] = {}
        for start in range(0, len(order), 500):
            part = order[start : start + 500]
            acks = [await js.publish_async(stream.subjects(t).inputs, f) for t, f in part]
            for (tenant, _), ack in zip(part, await asyncio.gather(*acks), strict=True):
                last[tenant] = max(last.get(tenant, 0), ack.seq)
        return last
    finally:
        await nc.close()


def throughput(
    cluster: LocalNatsCluster, workdir: Path, inputs: dict[str, list[bytes]],
    layout: dict[str, Sequence[str]], tag: str, args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    """Events/s of the instances in ``layout`` (name -> its tenants) over pre-published inputs."""
    opts = NatsOptions(servers=cluster.urls, request_timeout_s=30)
    stream = StreamOptions(name=f"BENCH_{tag}", prefix=f"bench{tag.lower()}", replicas=REPLICAS)
    frames = {t: framed(inputs[t], args.frame_events) for t in TENANTS}
    last_in = asyncio.run(prepublish(opts, stream, frames))
    cluster.wait_current([stream.name])
    configs = {name: instance_config(workdir, cluster.urls, stream, name, tenants, args.lease_ttl)
               for name, tenants in layout.items()}  # fmt: skip
    nats_cpu = sum(cpu_seconds(n.pid) for n in cluster.nodes)
    fleet: dict[str, ServeProcess] = {}
    try:
        for name, config in configs.items():
            fleet[name] = ServeProcess(config, workdir / f"{name}.log")
        covered = asyncio.run(_until_covered(opts, stream, last_in, list(fleet.values()), 600))
        service_cpu = sum(i.cpu_s() for i in fleet.values())
        nats_cpu = sum(cpu_seconds(n.pid) for n in cluster.nodes) - nats_cpu
    finally:
        codes = list(stop_all(fleet).values())
    began = {name: at for name, i in fleet.items() if (at := i.writing_since()) is not None}

    def span(names: Sequence[str]) -> tuple[float, int]:
        """Seconds from the first of them writing to the logs they finished all covered;
        the events in those logs."""
        tenants = [t for t, (_, _, writer) in covered.items() if writer in names]
        last = max(covered[t][0] for t in tenants)
        return last - min(began[name] for name in names), sum(covered[t][1] for t in tenants)

    seconds, events = span(list(began))
    finishers = sorted({writer for _, _, writer in covered.values()} & began.keys())
    per_instance = {name: round(n / s) for name, (s, n) in ((k, span([k])) for k in finishers)}
    return {
        "events_per_s": round(events / seconds),
        "events": events,
        "seconds": round(seconds, 3),
        "start_skew_s": round(max(began.values()) - min(began.values()), 3),
        "per_instance_events_per_s": per_instance,
        "service_cpu_s": round(service_cpu, 2),
        "nats_cpu_s": round(nats_cpu, 2),
        "exit_codes": codes,
        **audit(opts, stream, {t: len(inputs[t]) for t in TENANTS}, check_replay=False),
    }


# --- fail-over ---------------------------------------------------------------------------


class Flow(threading.Thread):
    """Inputs keep coming: one frame per tenant per round, ``rounds_per_s`` rounds a second,
    each frame published until acknowledged, under a message id the server de-duplicates."""

    def __init__(
        self, opts: NatsOptions, stream: StreamOptions, frames: dict[str, list[bytes]],
        rounds_per_s: float,
    ) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.opts, self.stream, self.frames, self.rounds_per_s = opts, stream, frames, rounds_per_s
        self.acked = dict.fromkeys(frames, 0)
        self.last_seq = dict.fromkeys(frames, 0)
        self.error: BaseException | None = None
        self._halt = threading.Event()

    @property
    def exhausted(self) -> bool:
        return all(self.acked[t] >= len(fs) for t, fs in self.frames.items())

    def run(self) -> None:
        try:
            asyncio.run(self._go())
        except BaseException as exc:
            self.error = exc

    def halt(self) -> None:
        """Publish no more (the frame in flight is still acknowledged)."""
        self._halt.set()

    def stop(self) -> None:
        """Halt, wait for the thread; raises what failed in it."""
        self.halt()
        self.join(120)
        if self.error is not None:
            raise RuntimeError(f"the input flow failed: {self.error!r}") from self.error

    async def _go(self) -> None:
        nc = await connect(self.opts)
        try:
            js = nc.jetstream(timeout=1.0)
            await ensure_stream(js, self.stream)
            due = time.monotonic()
            while not self._halt.is_set() and not self.exhausted:
                for tenant, frames in self.frames.items():
                    k = self.acked[tenant]
                    if k < len(frames):
                        self.last_seq[tenant] = await self._publish(js, tenant, k, frames[k])
                        self.acked[tenant] = k + 1
                due = max(due + 1 / self.rounds_per_s, time.monotonic() - 0.5)
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            await nc.close()

    async def _publish(self, js: Any, tenant: str, k: int, data: bytes) -> int:
        subject, headers = self.stream.subjects(tenant).inputs, {MSG_ID: _eid(tenant, k)}
        deadline = time.monotonic() + 60
        while True:
            try:
                return int((await js.publish(subject, data, headers=headers)).seq)
            except Exception:  # an election, a node going away: again, same id
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def _outage(
    urls: Sequence[str], stream: StreamOptions, tenants: Sequence[str], kill: Callable[[], None],
    not_by: str | None, timeout: float = 120,
) -> float:  # fmt: skip
    """Kill (``kill()``), then the seconds until every tenant's log has appended past its
    tail at the kill (with ``not_by``: by another writer than that one)."""
    nc = await connect(NatsOptions(servers=tuple(urls), connect_timeout_s=1, reconnect_wait_s=0.1))
    try:
        before = await _tails(nc, stream, tenants)
        while len(before) < len(tenants):
            await asyncio.sleep(0.05)
            before = await _tails(nc, stream, tenants)
        killed = time.monotonic()
        kill()
        while time.monotonic() - killed < timeout:
            now = await _tails(nc, stream, tenants)
            if all(t in now and now[t][0] > before[t][0] and now[t][1] != not_by
                   for t in tenants):  # fmt: skip
                return time.monotonic() - killed
            await asyncio.sleep(0.02)
        raise RuntimeError(f"the logs of {list(tenants)} did not append within {timeout} s")
    finally:
        await nc.close()


def _writers(urls: Sequence[str], stream: StreamOptions) -> dict[str, str]:
    async def go() -> dict[str, str]:
        nc = await connect(NatsOptions(servers=tuple(urls)))
        try:
            return {t: w for t, (_, w) in (await _tails(nc, stream, TENANTS)).items()}
        finally:
            await nc.close()

    return asyncio.run(go())


RECOVERED = ("standby", "writer")
"""A tenant's roles on ``/health`` once its instance has replayed the tenant's log (before:
``starting``; ``catching up`` and ``handing over`` are a writer's transitions)."""


def wait_recovered(
    instance: ServeProcess, port: int, tenants: Sequence[str], timeout: float = 120
) -> None:
    """Wait until the instance's ``/health`` (metrics ``port``) reports every one of its
    ``tenants`` recovered: a role in :data:`RECOVERED`."""
    deadline = time.monotonic() + timeout
    while not all((now := roles(port)).get(t) in RECOVERED for t in tenants):
        instance.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"tenants {list(tenants)} not recovered in {timeout} s: {now}")
        time.sleep(0.1)


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def failover(
    cluster: LocalNatsCluster, workdir: Path, inputs: dict[str, list[bytes]],
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    """Node kills and instance kills under a steady input flow (see the module docstring)."""
    urls = cluster.urls
    opts = NatsOptions(servers=urls, request_timeout_s=30)
    stream = StreamOptions(name="BENCH_FAILOVER", prefix="benchfail", replicas=REPLICAS)
    size = args.flow_frame_events
    flow = Flow(opts, stream, {t: framed(inputs[t], size) for t in TENANTS}, args.rate / size)
    groups = {f"router-{k + 1}": TENANTS[2 * k : 2 * k + 2] for k in range(3)}
    served = {**groups, "standby": TENANTS}
    ports = {name: free_port() for name in served}
    configs = {name: instance_config(workdir, urls, stream, name, tenants, args.lease_ttl,
                                     ports[name])
               for name, tenants in served.items()}  # fmt: skip
    fleet: dict[str, ServeProcess] = {}
    resume: list[float] = []
    follower: list[float] = []
    takeover: list[float] = []
    lease_leader_too = 0
    try:
        flow.start()
        for name in groups:
            fleet[name] = ServeProcess(configs[name], workdir / f"{name}.log")
        _wait(lambda: set(_writers(urls, stream).values()) == set(groups), 90,
              "three instances writing two tenants each")  # fmt: skip
        fleet["standby"] = ServeProcess(configs["standby"], workdir / "standby.log")
        wait_recovered(fleet["standby"], ports["standby"], served["standby"])

        def healthy() -> None:
            for instance in fleet.values():
                instance.check_alive()
            if flow.error is not None or flow.exhausted:
                raise RuntimeError(f"the input flow stopped ({flow.error!r}): raise --events "
                                   "or lower --rate")  # fmt: skip

        def node_kill(node: LocalNatsServer) -> float:
            """Kill -9 the node; the seconds until every log appended; the node back."""
            others = [n.url for n in cluster.nodes if n is not node]
            took = asyncio.run(_outage(others, stream, TENANTS, node.kill, None))
            node.start()
            cluster.wait_ready()
            cluster.wait_current([stream.name, f"KV_{LEASES}"])
            time.sleep(1.0)
            return took

        for _ in range(args.kills):
            healthy()
            node = cluster.node(cluster.leader_of(stream.name))
            lease_leader_too += node.name == cluster.leader_of(f"KV_{LEASES}")
            resume.append(node_kill(node))
        for _ in range(args.follower_kills):
            healthy()
            leaders = {cluster.leader_of(stream.name), cluster.leader_of(f"KV_{LEASES}")}
            follower.append(node_kill(next(n for n in cluster.nodes if n.name not in leaders)))
        for k in range(args.instance_kills):
            healthy()
            writers = _writers(urls, stream)
            writing = Counter(writers.values())
            most = sorted(w for w in writing if writing[w] == max(writing.values()))
            name = most[k % len(most)]
            victim = fleet[name]
            tenants = [t for t, w in writers.items() if w == name]
            takeover.append(asyncio.run(_outage(urls, stream, tenants, victim.kill9, name)))
            victim.start()
            wait_recovered(victim, ports[name], served[name])
        healthy()
        flow.stop()
        asyncio.run(_until_covered(opts, stream, flow.last_seq, list(fleet.values()), 120))
    finally:
        flow.halt()
        codes = stop_all(fleet)
    published = {t: min(flow.acked[t] * size, len(inputs[t])) for t in TENANTS}
    return {
        "resume_s": resume,
        "resume_follower_s": follower,
        "takeover_s": takeover,
        "inputs": sum(published.values()),
        "node_kills_also_lease_leader": lease_leader_too,
        "exit_codes": codes,
        **audit(opts, stream, published, check_replay=True),
    }


# --- the run -----------------------------------------------------------------------------


def _p50_max(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(statistics.median(values), 3), round(max(values), 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.events or (15_000 if args.quick else 60_000)
    args.kills = args.kills if args.kills is not None else (2 if args.quick else 5)
    args.follower_kills = args.kills if args.follower_kills is None else args.follower_kills
    args.instance_kills = (args.instance_kills if args.instance_kills is not None
                           else (2 if args.quick else 5))  # fmt: skip
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    inputs = generate(n, args.seed, args.agents)
    with tempfile.TemporaryDirectory(prefix="omniroute-bench-cluster-") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with LocalNatsCluster(workdir / "nats", 3) as cluster:
            one = throughput(cluster, workdir, inputs, {"solo": TENANTS}, "ONE", args)
            parts = [("*",) if args.spread else TENANTS[2 * k : 2 * k + 2] for k in range(3)]
            layout = {f"part-{k + 1}": tenants for k, tenants in enumerate(parts)}
            three = throughput(cluster, workdir, inputs, layout, "THREE", args)
            fail = failover(cluster, workdir, inputs, args)
            version = subprocess.run([cluster.nodes[0].binary, "--version"], capture_output=True,
                                     text=True).stdout.strip()  # fmt: skip
    resume_p50, resume_max = _p50_max(fail["resume_s"])
    follower_p50, follower_max = _p50_max(fail["resume_follower_s"])
    takeover_p50, takeover_max = _p50_max(fail["takeover_s"])
    scale = one["events_per_s"] and three["events_per_s"] / one["events_per_s"]
    lost = one["lost"] + three["lost"] + fail["lost"]
    duplicated = one["duplicated"] + three["duplicated"] + fail["duplicated"]
    result: dict[str, Any] = {
        "benchmark": "cluster",
        "events_per_s_1_instance": one["events_per_s"],
        "events_per_s_3_instances": three["events_per_s"],
        "scale_3_over_1": round(scale, 2),
        "resume_p50_s": resume_p50,
        "resume_max_s": resume_max,
        "resume_follower_p50_s": follower_p50,
        "resume_follower_max_s": follower_max,
        "takeover_p50_s": takeover_p50,
        "takeover_max_s": takeover_max,
        "lease_ttl_s": args.lease_ttl,
        "lost": lost,
        "duplicated": duplicated,
        "unexpected": one["unexpected"] + three["unexpected"] + fail["unexpected"],
        "deterministic": fail["replay_failures"] == 0,
        "resume_s": [round(s, 3) for s in fail["resume_s"]],
        "resume_follower_s": [round(s, 3) for s in fail["resume_follower_s"]],
        "takeover_s": [round(s, 3) for s in fail["takeover_s"]],
        "node_kills": len(fail["resume_s"]),
        "instance_kills": len(fail["takeover_s"]),
        "one_instance": one,
        "three_instances": three,
        "failover_inputs": fail["inputs"],
        "node_kills_also_lease_leader": fail["node_kills_also_lease_leader"],
        "failover_exit_codes": fail["exit_codes"],
        "tenants": len(TENANTS),
        "spread": args.spread,
        "inputs_per_tenant": n,
        "frame_events": args.frame_events,
        "flow_inputs_per_s_per_tenant": args.rate,
        "flow_frame_events": args.flow_frame_events,
        "replicas": REPLICAS,
        "nodes": 3,
        "cores": os.cpu_count(),
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "wall_s": round(time.perf_counter() - started, 1),
        "nats_server": version,
        "python": platform.python_version(),
        "seed": args.seed,
        "targets": TARGETS,
    }
    result["meets_targets"] = {
        "scale_3_over_1": result["scale_3_over_1"] >= TARGETS["scale_3_over_1"],
        "resume_p50_s": resume_p50 is not None and resume_p50 <= TARGETS["resume_p50_s"],
        "resume_max_s": resume_max is not None and resume_max <= TARGETS["resume_max_s"],
        "takeover_over_lease_ttl_s": takeover_max is not None
        and takeover_max <= args.lease_ttl + TARGETS["takeover_over_lease_ttl_s"],
        "lost_and_duplicated_0": lost == 0 and duplicated == 0,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="15,000 inputs per tenant, 2 + 2 + 2 kills (~2 min)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, help="inputs per tenant")
    parser.add_argument("--agents", type=int, default=100, help="agents per tenant")
    parser.add_argument("--frame-events", type=int, default=1000,
                        help="events per pre-published input frame")  # fmt: skip
    parser.add_argument("--rate", type=float, default=100.0,
                        help="inputs/s per tenant while killing")  # fmt: skip
    parser.add_argument("--flow-frame-events", type=int, default=5,
                        help="events per input frame while killing")  # fmt: skip
    parser.add_argument("--kills", type=int, help="stream-leader node kills")
    parser.add_argument("--follower-kills", type=int,
                        help="kills of a node leading neither stream nor lease bucket")  # fmt: skip
    parser.add_argument("--instance-kills", type=int, help="instance kills")
    parser.add_argument("--lease-ttl", type=float, default=5.0, help="service.lease_ttl_s")
    parser.add_argument("--spread", action="store_true",
                        help='the 3 instances with tenants = ["*"], not 2 each')  # fmt: skip
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the instances' logs and configurations in DIR")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    ok = result["lost"] == 0 and result["duplicated"] == 0 and result["deterministic"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
