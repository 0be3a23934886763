"""``[service] tenants = ["*"]``: tenants spread over the live instances.

The claim logic (:mod:`omniroute.adapters.service.balance`) on its own: shares, caps, the
rendezvous order, and a fleet of instances balancing rounds in random order over a table
of leases (one holder per tenant, balanced in the end, nobody over its cap). Then real
``omniroute serve`` processes on a real nats-server: one instance leads all 6 tenants, two
more join and each ends up leading 2 (graceful hand-overs), one is killed (``kill -9``)
and the survivors take its tenants within the lease TTL (+1 s), within their
``max_tenants``; every input published throughout is in its tenant's log exactly once and
the log replays byte for byte.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer, free_port
from omniroute.adapters.service.balance import plan, score, shares
from omniroute.adapters.service.config import ConfigError, ServiceConfig, parse_config
from omniroute.engine.events import Event
from tests.support.cluster import health, roles, summary, tails, wait_resumed
from tests.support.nats import options_for, unique
from tests.support.service import (
    ServeProcess,
    check_log,
    config_toml,
    frames_of,
    publish_in_thread,
    wait_for,
    wait_until_consumed,
    workload,
)

# --- the claim logic ---------------------------------------------------------------------


def test_shares_are_ceil_t_over_n_and_what_a_capped_instance_cannot_take_the_others_share() -> None:
    assert shares(6, {"a": 0}) == {"a": 6}
    assert shares(6, {"a": 0, "b": 0}) == {"a": 3, "b": 3}
    assert shares(7, {"a": 0, "b": 0, "c": 0}) == {"a": 3, "b": 3, "c": 3}
    assert shares(6, {"a": 0, "b": 2, "c": 2}) == {"a": 2, "b": 2, "c": 2}
    assert shares(6, {"a": 0, "b": 2}) == {"a": 4, "b": 2}
    assert shares(6, {"a": 1, "b": 2}) == {"a": 1, "b": 2}  # too few: each at its cap
    assert shares(0, {"a": 0}) == {"a": 0}


def test_plan_claims_its_favourites_up_to_its_share_and_hands_over_its_least_favourite() -> None:
    tenants = [f"t{k}" for k in range(6)]
    caps = {"a": 0, "b": 0, "c": 0}
    alone = plan(tenants, {"a": 0}, "a", led=[])
    assert alone.share == 6 and sorted(alone.claim) == tenants and alone.release == []
    fresh = plan(tenants, caps, "c", led=[])
    assert fresh.share == 2
    assert fresh.claim == sorted(tenants, key=lambda t: -score(t, "c"))
    over = plan(tenants, caps, "a", led=tenants)
    assert over.claim == [] and over.release == sorted(tenants, key=lambda t: score(t, "a"))[:4]
    busy = plan(tenants, caps, "b", led=["t0"], busy=["t1"])
    assert "t0" not in busy.claim and "t1" not in busy.claim and len(busy.claim) == 4
    assert plan(tenants, caps, "b", led=["t0", "t1"]).claim == []  # at its share
    capped = plan(tenants, {"a": 0, "b": 1}, "b", led=["t0", "t1"])
    assert capped.share == 1 and len(capped.release) == 1


def _simulate(
    tenants: list[str], caps: dict[str, int], holder: dict[str, str], rng: random.Random
) -> None:
    """Balancing rounds of ``caps``' instances in random order until nothing changes; a
    claim succeeds only on a free lease (the KV create), a release frees it."""
    for _ in range(50):
        changed = False
        for me in rng.sample(sorted(caps), len(caps)):
            led = [t for t, h in holder.items() if h == me]
            step = plan(tenants, caps, me, led)
            for t in step.release:
                del holder[t]
                changed = True
            room = step.share - len(led)
            for t in step.claim:
                if room and t not in holder:
                    holder[t] = me
                    room -= 1
                    changed = True
            assert sum(h == me for h in holder.values()) <= (caps[me] or len(tenants))
        if not changed:
            return
    raise AssertionError(f"no balance after 50 rounds: {holder}")


@pytest.mark.parametrize("seed", range(5))
def test_a_fleet_balancing_in_any_order_converges_with_one_holder_per_tenant(seed: int) -> None:
    rng = random.Random(seed)
    tenants = [f"tenant-{k}" for k in range(rng.randint(5, 40))]
    holder: dict[str, str] = {}
    fleet: dict[str, int] = {}
    for name in ("r1", "r2", "r3", "r4"):  # instances join one by one
        fleet[name] = rng.choice([0, 0, 3, 12])
        _check_balanced(tenants, fleet, holder, rng)
    del fleet["r2"]  # one dies: its leases lapse
    holder = {t: h for t, h in holder.items() if h != "r2"}
    _check_balanced(tenants, fleet, holder, rng)


def _check_balanced(
    tenants: list[str], fleet: dict[str, int], holder: dict[str, str], rng: random.Random
) -> None:
    """Balance; then nobody past its share (so its cap), and every tenant served if the
    caps allow it."""
    _simulate(tenants, fleet, holder, rng)
    level = shares(len(tenants), fleet)
    for name in fleet:
        assert sum(h == name for h in holder.values()) <= level[name]
    if sum(level.values()) >= len(tenants):
        assert len(holder) == len(tenants)


def test_spread_configuration_is_checked(tmp_path: Path) -> None:
    def parse(service: dict[str, object]) -> ServiceConfig:
        return parse_config({"service": service}, tmp_path, environ={})

    config = parse({"tenants": ["*"], "max_tenants": 4})
    assert config.service.spread and config.service.named_tenants == ()
    assert parse({"tenants": ["acme"]}).service.named_tenants == ("acme",)
    for service, message in [
        ({"tenants": ["*", "acme"]}, 'tenants: "\\*" \\(every tenant\\) stands alone'),
        ({"tenants": ["*"], "max_tenants": -1}, "max_tenants must be >= 0"),
        ({"tenants": ["acme"], "max_tenants": 2}, 'max_tenants needs tenants = \\["\\*"\\]'),
        ({"tenants": ["*"], "instance": "router 1"}, "instance 'router 1': use"),
        ({"tenants": ["*"], "max_tenant": 2}, "max_tenant"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse(service)


# --- instances of ``omniroute serve`` ----------------------------------------------------

_TTL = 2.0


@dataclass
class _Fleet:
    """``serve`` instances by name, each with its metrics port, and the most tenants each
    was seen leading."""

    configs: dict[str, tuple[Path, int]]
    tmp_path: Path
    procs: dict[str, ServeProcess] = field(default_factory=dict)
    killed: list[ServeProcess] = field(default_factory=list)
    most: dict[str, int] = field(default_factory=dict)

    def start(self, name: str) -> None:
        config, _ = self.configs[name]
        n = sum(1 for p in self.tmp_path.glob(f"{name}-*.log")) + 1
        self.procs[name] = ServeProcess(config, self.tmp_path / f"{name}-{n}.log")

    def kill9(self, name: str) -> None:
        self.procs[name].kill9()
        self.killed.append(self.procs.pop(name))

    def led(self) -> dict[str, list[str]]:
        """Per running instance, the tenants it writes now (also updates ``most``)."""
        out = {}
        for name in self.procs:
            out[name] = sorted(t for t, r in roles(self.configs[name][1]).items() if r == "writer")
            self.most[name] = max(self.most.get(name, 0), len(out[name]))
        return out

    def wait(
        self, want: Callable[[dict[str, list[str]]], bool], timeout: float, what: str
    ) -> float:
        started = time.monotonic()
        wait_for(lambda: want(self.led()), timeout, what, every=0.1)
        return time.monotonic() - started


def _gauge(port: int, name: str) -> float | None:
    """A metric without labels from an instance's ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


def _one_writer_each(tenants: list[str]) -> Callable[[dict[str, list[str]]], bool]:
    return lambda led: sorted(t for ts in led.values() for t in ts) == tenants


def _spread_run(server: LocalNatsServer, tmp_path: Path, *, kills: int, events: int) -> str:
    opts = options_for(server)
    stream = StreamOptions(name=unique("SPREAD"), prefix=unique("spread"))
    tenants = [f"t{k}" for k in range(6)]
    buckets = f'lease_bucket = "{unique("leases")}"\ninstance_bucket = "{unique("live")}"'
    extra = f"lease_ttl_s = {_TTL}\nsnapshot_every = 200\ntick_interval_s = 0.5\n{buckets}"
    configs = {}
    for name, cap in (("r1", 0), ("r2", 2), ("r3", 2)):
        port = free_port()
        path = tmp_path / f"{name}.toml"
        path.write_text(config_toml(server.url, stream, ["*"], instance=name, metrics_port=port,
                                    extra_service=f"{extra}\nmax_tenants = {cap}"))  # fmt: skip
        configs[name] = (path, port)
    fleet = _Fleet(configs, tmp_path)

    def balanced(led: dict[str, list[str]]) -> bool:
        return sorted(map(len, led.values())) == [2, 2, 2] and _one_writer_each(tenants)(led)

    ts0 = int(time.time() * 1000)
    frames = {t: frames_of(workload(t, events, seed=k, ts0=ts0), seed=k, max_size=6)
              for k, t in enumerate(tenants)}  # fmt: skip
    progress: dict[str, list[int]] = {t: [] for t in tenants}
    seqs: dict[str, list[int]] = {t: [] for t in tenants}
    stop = threading.Event()
    figures: dict[str, list[float]] = {"alone": [], "balanced": [], "take-over": []}
    try:
        publishers = [
            publish_in_thread(
                progress[t], seqs[t], opts, stream, t, frames[t], pause=0.05, until=stop.is_set
            )
            for t in tenants
        ]
        wait_for(lambda: all(progress.values()), 30, "every tenant on the stream")
        fleet.start("r1")
        figures["alone"].append(fleet.wait(lambda led: len(led["r1"]) == 6, 30, "r1 to lead all"))
        fleet.start("r2")
        fleet.start("r3")
        figures["balanced"].append(fleet.wait(balanced, 60, "2 tenants led by each instance"))
        report = health(configs["r1"][1]) or {}
        assert (report["instances"], report["share"]) == (3, 2), report
        wait_for(lambda: _gauge(configs["r1"][1], "omniroute_tenants_led") == 2, 10, "the gauge")
        rng = random.Random(kills)
        for _ in range(kills):
            victim = rng.choice(["r2", "r3"])
            survivor = "r3" if victim == "r2" else "r2"
            led = fleet.led()
            before = tails(opts, stream, led[victim])
            assert before is not None
            fleet.kill9(victim)
            killed = time.monotonic()
            fleet.wait(
                lambda led, survivor=survivor: len(led[survivor]) == 2 and len(led["r1"]) == 4
                and _one_writer_each(tenants)(led),
                30, "the survivors to lead every tenant",
            )  # fmt: skip
            wait_resumed(opts, stream, before, not_by=victim, timeout=30)
            figures["take-over"].append(time.monotonic() - killed)
            fleet.start(victim)  # back: r1 hands 2 over to it
            fleet.wait(balanced, 60, "balance again")
        stop.set()
        for p in publishers:
            p.join(60)
        for t in tenants:
            wait_until_consumed(opts, stream, t, seqs[t][-1], timeout=60)
        for name, proc in fleet.procs.items():
            assert proc.proc.poll() is None, f"{name} exited:\n{proc.output()[-3000:]}"
        for proc in list(fleet.procs.values()):
            assert proc.terminate() == 0, proc.output()[-3000:]
    finally:
        stop.set()
        for proc in [*fleet.procs.values(), *fleet.killed]:
            proc.close()
    for t in tenants:
        published: list[Event] = [e for f in frames[t][: len(seqs[t])] for e in f]
        check_log(opts, stream, t, published)
    assert fleet.most["r2"] <= 2 and fleet.most["r3"] <= 2, fleet.most  # max_tenants
    assert max(figures["take-over"]) <= _TTL + 1.0 + 1.0, figures  # (+1 s of a busy box)
    return "; ".join(summary(k, v) for k, v in figures.items())


def test_tenants_spread_over_instances_balance_and_survive_a_kill(
    nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    figures = _spread_run(nats_server, tmp_path, kills=1, events=3000)
    print(f"\nspread: {time.monotonic() - started:.1f} s wall; {figures}")


@pytest.mark.slow
def test_tenants_spread_over_instances_through_many_kills(
    nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    started = time.monotonic()
    figures = _spread_run(nats_server, tmp_path, kills=8, events=20_000)
    print(f"\nspread, 8 kills: {time.monotonic() - started:.1f} s wall; {figures}")
