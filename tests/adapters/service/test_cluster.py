"""``omniroute serve`` on a 3-node JetStream cluster (stream, lease bucket and snapshots at
R3), with nodes and instances killed (``kill -9``) while inputs keep coming.

Every instance is configured with every tenant: the lease makes one writer per tenant and
the others hot standbys (a slow variant has ``tenants = ["*"]``: each instance leads its
share and follows none). A seeded schedule kills the node leading the stream, the node
leading the lease bucket and the instance writing the most tenants, restarting each.
Afterwards: every input exactly once in each tenant's log, in order; a clean replay
re-decides every recorded decision byte for byte; no conversation assigned twice, no
agent over capacity; every tenant served by exactly one writer; no instance exited.
The short run is in the default suite; the long one (``-m slow``, >= 30 kills) prints
resume times (node kill -> every log appends again) and take-over times (instance kill
-> the standby's first frame). Replicas or placement tags the cluster cannot hold are
configuration errors naming the key.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from omniroute.adapters.nats.cluster import LocalNatsCluster
from omniroute.adapters.nats.options import (
    NatsOptions,
    PlacementError,
    StreamOptions,
    connect,
    ensure_stream,
)
from omniroute.adapters.nats.server import free_port
from omniroute.engine.events import Event
from tests.support.cluster import Tail, roles, summary, tails, wait_resumed
from tests.support.service import (
    InProcessService,
    ServeProcess,
    check_log,
    config_toml,
    frames_of,
    publish_in_thread,
    service_config,
    wait_for,
    wait_until_consumed,
    workload,
)

_LEASE_TTL_S = 2.0
"""Below the cluster's leader election time (4-8 s on a busy box), unlike production's 10 s:
losing the lease bucket's leader lapses the leases too, so each such kill is also a
hand-over (the harder case)."""
_LEASE_BUCKET = "omniroute_leases"
_KINDS = ("stream leader", "lease leader", "instance")


@dataclass
class _Instance:
    """One ``serve`` instance: its name, configuration, metrics port and incarnations."""

    name: str
    config: Path
    port: int
    procs: list[ServeProcess] = field(default_factory=list)

    def start(self, tmp_path: Path) -> ServeProcess:
        proc = ServeProcess(self.config, tmp_path / f"{self.name}-{len(self.procs) + 1}.log")
        self.procs.append(proc)
        proc.wait_ready("serving tenants")
        return proc

    @property
    def proc(self) -> ServeProcess:
        return self.procs[-1]

    def roles(self) -> dict[str, str]:
        return roles(self.port)


@dataclass
class _Figures:
    resume_s: list[float] = field(default_factory=list)
    takeover_s: list[float] = field(default_factory=list)


def _schedule(seed: int, kills: int) -> list[str]:
    """What to kill, in order: each kind once (shuffled), then kinds drawn at random."""
    rng = random.Random(seed)
    kinds = list(_KINDS)
    rng.shuffle(kinds)
    return (kinds + [rng.choice(_KINDS) for _ in range(kills)])[:kills]


def _settled_tails(opts: NatsOptions, stream: StreamOptions, tenants: list[str]) -> Tail:
    """The logs' tails, once the cluster can tell them."""
    found: list[Tail] = []

    def known() -> bool:
        now = tails(opts, stream, tenants)
        found.extend([now] if now is not None else [])
        return bool(found)

    wait_for(known, 30, "the logs' tails")
    return found[-1]


def _kill_node(
    cluster: LocalNatsCluster, leading: str, opts: NatsOptions, stream: StreamOptions,
    tenants: list[str], rng: random.Random,
) -> float:  # fmt: skip
    """Kill -9 the node leading stream ``leading``; the seconds until every log resumed;
    restart the node after a seeded down time and wait until its replicas are current."""
    node = cluster.node(cluster.leader_of(leading))
    before = _settled_tails(opts, stream, tenants)
    killed = time.monotonic()
    node.kill()
    resumed = wait_resumed(opts, stream, before, timeout=60)
    time.sleep(max(0.0, rng.uniform(0.5, 3.0) - (time.monotonic() - killed)))
    node.start()
    cluster.wait_ready()
    cluster.wait_current([stream.name, f"KV_{_LEASE_BUCKET}"])
    return resumed


def _kill_instance(
    instances: list[_Instance], opts: NatsOptions, stream: StreamOptions, tenants: list[str],
    tmp_path: Path, rng: random.Random,
) -> float:  # fmt: skip
    """Kill -9 the instance writing the most tenants; the seconds until a standby wrote
    each of them; restart the instance (it becomes a standby)."""
    roles = {i.name: i.roles() for i in instances}
    writing = {n: sorted(t for t, r in rs.items() if r == "writer") for n, rs in roles.items()}
    victim = max(instances, key=lambda i: (len(writing[i.name]), rng.random()))
    wrote = writing[victim.name] or tenants
    before = _settled_tails(opts, stream, wrote)
    victim.proc.kill9()
    took_over = wait_resumed(opts, stream, before, not_by=victim.name, timeout=60)
    victim.start(tmp_path)
    return took_over


def _chaos_run(
    cluster: LocalNatsCluster, tmp_path: Path, *, tenants: int, instances: int, kills: int,
    seed: int, events: int, spread: bool = False,
) -> _Figures:  # fmt: skip
    rng = random.Random(seed)
    names = [f"t{k}" for k in range(tenants)]
    opts = NatsOptions(servers=cluster.urls, connect_timeout_s=1.0, reconnect_wait_s=0.1)
    stream = StreamOptions(name="CLUSTER", prefix="cluster", replicas=3)
    extra = (f"lease_ttl_s = {_LEASE_TTL_S}\nsnapshot_every = 300\ntick_interval_s = 0.5\n"
             f'lease_bucket = "{_LEASE_BUCKET}"')  # fmt: skip
    fleet: list[_Instance] = []
    for k in range(instances):
        name = f"router-{k + 1}"
        port = free_port()
        config = tmp_path / f"{name}.toml"
        config.write_text(config_toml(cluster.urls, stream, ["*"] if spread else names,
                                      instance=name, extra_service=extra,
                                      metrics_port=port))  # fmt: skip
        fleet.append(_Instance(name, config, port))
    ts0 = int(time.time() * 1000)
    inputs = {t: workload(t, events, seed=seed + k, ts0=ts0) for k, t in enumerate(names)}
    frames = {t: frames_of(inputs[t], seed=seed + k, max_size=6) for k, t in enumerate(names)}
    figures = _Figures()
    done = False
    progress: dict[str, list[int]] = {t: [] for t in names}
    seqs: dict[str, list[int]] = {t: [] for t in names}
    try:
        for instance in fleet:
            instance.start(tmp_path)
        publishers = [
            publish_in_thread(
                progress[t],
                seqs[t],
                opts,
                stream,
                t,
                frames[t],
                msg_ids=[f"{t}-{i}" for i in range(len(frames[t]))],
                pause=0.04,
                until=lambda: done,
                ack_timeout=1.0,
            )
            for t in names
        ]
        wait_for(lambda: all(len(p) > 20 for p in progress.values()), 60, "publishing")
        for kind in _schedule(seed, kills):
            time.sleep(rng.uniform(0.5, 1.5))
            if kind == "instance":
                figures.takeover_s.append(_kill_instance(fleet, opts, stream, names, tmp_path, rng))
            else:
                leading = stream.name if kind == "stream leader" else f"KV_{_LEASE_BUCKET}"
                figures.resume_s.append(_kill_node(cluster, leading, opts, stream, names, rng))
            assert all(p.is_alive() for p in publishers), "a publisher stopped early"
            for instance in fleet:
                assert instance.proc.proc.poll() is None, (
                    f"{instance.name} exited:\n{instance.proc.output()[-3000:]}"
                )
        done = True
        for p in publishers:
            p.join(120)
        for t in names:
            wait_until_consumed(opts, stream, t, seqs[t][-1], timeout=90)

        def one_writer_each() -> bool:
            roles = [i.roles() for i in fleet]
            return all(sum(r.get(t) == "writer" for r in roles) == 1 for t in names)

        wait_for(one_writer_each, 30, "exactly one writer per tenant")
        for instance in fleet:
            assert instance.proc.terminate() == 0, instance.proc.output()[-3000:]
    finally:
        done = True
        for instance in fleet:
            for proc in instance.procs:
                proc.close()
    for t in names:
        published: list[Event] = [e for f in frames[t][: len(seqs[t])] for e in f]
        check_log(opts, stream, t, published)
    return figures


def test_cluster_node_and_instance_kills_lose_and_double_nothing(
    nats_cluster: LocalNatsCluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    figures = _chaos_run(nats_cluster, tmp_path, tenants=3, instances=2, kills=3, seed=18,
                         events=6000)  # fmt: skip
    print(f"\ncluster short run: {time.monotonic() - started:.1f} s wall; "
          f"{summary('resume after node kill', figures.resume_s)}; "
          f"{summary('take-over after instance kill', figures.takeover_s)}")  # fmt: skip
    assert len(figures.resume_s) == 2 and len(figures.takeover_s) == 1
    assert max(figures.takeover_s) <= _LEASE_TTL_S + 3  # (+1 s of the issue, +2 s of a busy box)


@pytest.mark.slow
@pytest.mark.parametrize("kills", [30])
def test_cluster_many_kills_of_nodes_and_instances(
    nats_cluster: LocalNatsCluster, tmp_path: Path, kills: int
) -> None:
    started = time.monotonic()
    figures = _chaos_run(nats_cluster, tmp_path, tenants=6, instances=3, kills=kills, seed=1818,
                         events=60_000)  # fmt: skip
    print(f"\ncluster long run ({kills} kills): {time.monotonic() - started:.1f} s wall; "
          f"{summary('resume after node kill', figures.resume_s)}; "
          f"{summary('take-over after instance kill', figures.takeover_s)}")  # fmt: skip
    assert len(figures.resume_s) + len(figures.takeover_s) == kills


@pytest.mark.slow
def test_cluster_kills_with_tenants_spread_over_the_instances(
    nats_cluster: LocalNatsCluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    figures = _chaos_run(nats_cluster, tmp_path, tenants=6, instances=3, kills=9, seed=1819,
                         events=20_000, spread=True)  # fmt: skip
    print(f"\ncluster, tenants spread ({len(figures.resume_s) + len(figures.takeover_s)} kills): "
          f"{time.monotonic() - started:.1f} s wall; "
          f"{summary('resume after node kill', figures.resume_s)}; "
          f"{summary('take-over after instance kill', figures.takeover_s)}")  # fmt: skip


def test_replicas_or_placement_the_cluster_cannot_hold_are_configuration_errors(
    nats_cluster: LocalNatsCluster, tmp_path: Path
) -> None:
    urls = nats_cluster.urls
    too_many = StreamOptions(name="R5", prefix="r5", replicas=5)
    svc = InProcessService(service_config(config_toml(urls, too_many, ["acme"]), tmp_path))
    with pytest.raises(PlacementError, match=r"stream.replicas = 5: .* 3 server\(s\) up"):
        svc.stop()
    stream = StreamOptions(name="R3", prefix="r3", replicas=3)
    text = config_toml(urls, stream, ["acme"], extra_service="lease_replicas = 5")
    svc = InProcessService(service_config(text, tmp_path))
    with pytest.raises(PlacementError, match=r"service.lease_replicas = 5: the cluster cannot"):
        svc.stop()

    async def tagged() -> None:
        nc = await connect(NatsOptions(servers=urls))
        try:
            tags = StreamOptions(name="TAGS", prefix="tags", replicas=3, placement_tags=("ssd",))
            await ensure_stream(nc.jetstream(), tags)
        finally:
            await nc.close()

    with pytest.raises(PlacementError, match=r"stream.replicas = 3: .*tags not matched"):
        asyncio.run(tagged())
