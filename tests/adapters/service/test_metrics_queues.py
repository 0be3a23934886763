"""Per tenant/queue/channel metrics of ``omniroute serve`` (issue 16, item 6): gauges from the
engine's state at the tenant's clock, outcome counters from the decisions the writer
writes, and label sets that stay bounded whatever queue names the state holds.

The engine-driven tests feed a real :class:`Engine` through the same calls the writer makes
(:meth:`Metrics.before`, ``apply``, :meth:`Metrics.tally`, :meth:`Metrics.count_outcomes`)
and read the registry; the last test runs the real service against nats-server and scrapes
``/metrics``.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.metrics import OTHER, Metrics, Outcomes
from omniroute.engine import Engine, Policy, parse_policy
from omniroute.engine import events as ev
from omniroute.engine.events import CHANNELS, Decision, Event, is_decision
from tests.support.desk import Desk, of_type
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    config_toml,
    frames_of,
    log_events,
    publish,
    service_config,
    wait_until_consumed,
    workload,
)

T = "acme"
QC_FAMILIES = (
    "omniroute_waiting", "omniroute_oldest_wait_seconds", "omniroute_handling",
    "omniroute_assigned_total", "omniroute_abandoned_total", "omniroute_sla_breached_total",
)  # fmt: skip

POLICY = """
[queues.billing]
offer_mode = "offer"
offer_timeout_s = 10
[queues.sales]
offer_mode = "auto"
"""


class MeteredDesk(Desk):
    """A desk whose every input goes through the writer's metric calls."""

    def __init__(
        self, policy: Policy | str | None = None, metrics: Metrics | None = None,
        tenant: str = T,
    ) -> None:  # fmt: skip
        super().__init__(policy, tenant)
        self.metrics = metrics or Metrics(self.engine.policy)
        self.outcomes: Outcomes = Counter()
        self.inputs: list[tuple[Event, list[Decision]]] = []

    def send(self, event_type: type[Any], **fields: Any) -> list[Decision]:
        fields.setdefault("tenant", self.tenant)
        fields.setdefault("ts", self.now)
        event: Event = event_type(**fields)
        return self.apply(event)

    def apply(self, event: Event) -> list[Decision]:
        before = self.metrics.before(self.engine, self.tenant, event)
        out = self.engine.apply(event)
        self.log.extend(out)
        self.inputs.append((event, out))
        if out or before is not None:
            self.metrics.tally(self.engine, self.tenant, event, out, before, self.outcomes)
        return out

    def observe(self) -> Metrics:
        """What the service does: the batch's tally when its frame is acknowledged, the
        gauges every interval."""
        self.metrics.count_outcomes(self.tenant, self.outcomes.items())
        self.outcomes.clear()
        self.metrics.observe_state(self.tenant, self.engine)
        return self.metrics


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {"tenant": T, **labels})


def series(m: Metrics, family: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one family (``_total`` for a counter), by sorted labels."""
    out = {}
    for metric in m.registry.collect():
        for s in metric.samples:
            if s.name == family:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def naive_gauges(engine: Engine, tenant: str = T) -> dict[str, Counter[tuple[str, str]]]:
    """The gauges recomputed the slow, obvious way (no label mapping: every queue known)."""
    state = engine.tenant(tenant)
    assert state is not None
    now = engine.clock_of(tenant)
    waiting: Counter[tuple[str, str]] = Counter()
    oldest: Counter[tuple[str, str]] = Counter()
    handling: Counter[tuple[str, str]] = Counter()
    for conv in state.conversations.values():
        key = (conv.queue, conv.channel)
        if conv.in_queue:
            waiting[key] += 1
            oldest[key] = max(oldest[key], now - conv.enqueued_ts)
        if conv.stage == "assigned":
            handling[key] += 1
    return {"waiting": waiting, "oldest": oldest, "handling": handling}


# --- gauges --------------------------------------------------------------------------------


def test_gauges_show_waiting_oldest_wait_handling_and_agents_by_status() -> None:
    desk = MeteredDesk(POLICY)
    desk.at(1).agent("dan", {"billing": 1})
    desk.arrive("c1", "voice", queue="billing", skills={"billing": 1})  # offered to dan
    assert of_type(desk.tick(11.001), ev.AgentNotResponding)  # the offer lapses: re-queued
    desk.agent("ann")
    desk.agent("bob", available=False)
    desk.send(ev.AgentStatusChanged, agent_id="bob", status="away")
    desk.agent("cat", available=False)  # registered: offline
    desk.at(12).arrive("c2", "voice", queue="billing", skills={"billing": 1})
    desk.at(13).arrive("c3", "webchat", queue="billing", skills={"billing": 1})
    assert of_type(desk.at(14).arrive("c4", "email", queue="sales"), ev.ConversationAssigned)
    desk.at(15).arrive("c5", "sms", skills={"legal": 1})  # the default queue
    desk.tick(20)
    m = desk.observe()

    assert value(m, "omniroute_waiting", queue="billing", channel="voice") == 2
    assert value(m, "omniroute_oldest_wait_seconds", queue="billing", channel="voice") == 19.0
    assert value(m, "omniroute_waiting", queue="billing", channel="webchat") == 1
    assert value(m, "omniroute_oldest_wait_seconds", queue="billing", channel="webchat") == 7.0
    assert value(m, "omniroute_waiting", queue="default", channel="sms") == 1
    assert value(m, "omniroute_oldest_wait_seconds", queue="default", channel="sms") == 5.0
    assert value(m, "omniroute_handling", queue="sales", channel="email") == 1
    assert value(m, "omniroute_waiting", queue="sales", channel="email") == 0
    assert value(m, "omniroute_assigned_total", queue="sales", channel="email") == 1
    agents = {s: value(m, "omniroute_agents", status=s) for s in
              ("available", "not_responding", "away", "offline")}  # fmt: skip
    assert agents == {"available": 1, "not_responding": 1, "away": 1, "offline": 1}
    # the per-class depth still agrees
    assert value(m, "omniroute_queue_depth", **{"class": "voice"}) == 2
    # what the engine holds, the obvious way
    naive = naive_gauges(desk.engine)
    shown = series(m, "omniroute_waiting")
    assert {k: v for k, v in shown.items() if v} == {
        (("channel", c), ("queue", q), ("tenant", T)): n for (q, c), n in naive["waiting"].items()
    }

    # the oldest voice call breaches its 20 s SLA (from first contact), then is abandoned
    assert of_type(desk.tick(21.002), ev.SlaBreached)
    assert of_type(desk.send(ev.CustomerAbandoned, conversation_id="c1"), ev.EventRejected) == []
    desk.send(ev.CustomerAbandoned, conversation_id="c5")
    rejected = desk.send(ev.CustomerAbandoned, conversation_id="c4")  # assigned: not abandoned
    assert of_type(rejected, ev.EventRejected)
    m = desk.observe()
    assert value(m, "omniroute_sla_breached_total", queue="billing", channel="voice") == 1
    assert value(m, "omniroute_abandoned_total", queue="billing", channel="voice") == 1
    assert value(m, "omniroute_abandoned_total", queue="default", channel="sms") == 1
    assert value(m, "omniroute_abandoned_total", queue="sales", channel="email") is None
    assert value(m, "omniroute_waiting", queue="billing", channel="voice") == 1
    assert value(m, "omniroute_oldest_wait_seconds", queue="billing", channel="voice") == 9.002
    # an emptied queue is shown as empty, not as it last was
    assert value(m, "omniroute_waiting", queue="default", channel="sms") == 0
    assert value(m, "omniroute_oldest_wait_seconds", queue="default", channel="sms") == 0


def test_oldest_wait_uses_the_tenant_clock_not_the_wall_clock() -> None:
    desk = MeteredDesk(POLICY)
    desk.at(100).arrive("c1", "email", queue="billing")
    m = desk.observe()
    assert value(m, "omniroute_oldest_wait_seconds", queue="billing", channel="email") == 0
    desk.tick(160.5)
    m = desk.observe()
    time.sleep(0.01)  # the wall clock moves; the gauge does not
    desk.metrics.observe_state(T, desk.engine)
    assert value(m, "omniroute_oldest_wait_seconds", queue="billing", channel="email") == 60.5


# --- counters ------------------------------------------------------------------------------


def test_counters_equal_the_decisions_on_a_random_workload() -> None:
    desk = MeteredDesk()
    events = workload(T, 3000, seed=7)
    arrived: dict[str, str] = {}
    for event in events:
        if isinstance(event, ev.ConversationArrived):
            arrived[event.conversation_id] = event.channel
        desk.apply(event)
        if len(desk.inputs) % 500 == 0:
            desk.observe()  # gauges and counters mid-way too: nothing is counted twice
    m = desk.observe()

    assigned = Counter(
        arrived[d.conversation_id] for d in of_type(desk.log, ev.ConversationAssigned)
    )
    breached = Counter(arrived[d.conversation_id] for d in of_type(desk.log, ev.SlaBreached))
    abandoned = Counter(
        arrived[e.conversation_id] for e, out in desk.inputs
        if isinstance(e, ev.CustomerAbandoned) and not of_type(out, ev.EventRejected)
    )  # fmt: skip
    assert sum(assigned.values()) > 100 and sum(abandoned.values()) > 10
    assert sum(breached.values()) > 0
    for family, expected in (("omniroute_assigned_total", assigned),
                             ("omniroute_sla_breached_total", breached),
                             ("omniroute_abandoned_total", abandoned)):  # fmt: skip
        got = {dict(k)["channel"]: v for k, v in series(m, family).items()}
        assert all(dict(k)["queue"] == "default" for k in series(m, family))
        assert got == dict(expected), family

    naive = naive_gauges(desk.engine)
    for name, family in (("waiting", "omniroute_waiting"), ("handling", "omniroute_handling")):
        shown = {(dict(k)["queue"], dict(k)["channel"]): v for k, v in series(m, family).items()}
        assert {k: v for k, v in shown.items() if v} == dict(naive[name]), name
    oldest = series(m, "omniroute_oldest_wait_seconds")
    assert {(dict(k)["queue"], dict(k)["channel"]): v for k, v in oldest.items() if v} == {
        k: v / 1000 for k, v in naive["oldest"].items() if v
    }
    state = desk.engine.tenant(T)
    assert state is not None
    statuses = Counter(
        "not_responding" if a.status == "available" and not a.responsive else a.status
        for a in state.agents.values()
    )
    assert {s: value(m, "omniroute_agents", status=s) for s in statuses} == dict(statuses)
    assert sum(v for v in series(m, "omniroute_agents").values()) == len(state.agents)


def test_a_decision_whose_conversation_is_gone_is_counted_as_other() -> None:
    metrics = Metrics()
    engine = Engine()
    tally: Outcomes = Counter()
    breach = ev.SlaBreached(tenant=T, ts=1, conversation_id="gone", target_s=20, waited_ms=21)
    metrics.tally(engine, T, ev.Tick(tenant=T, ts=1), [breach], None, tally)
    assert tally == {("sla_breached", OTHER, OTHER): 1}


# --- bounded labels ------------------------------------------------------------------------


def test_unknown_queue_names_land_in_other_and_series_stay_bounded() -> None:
    """The engine's state names 60 queues the metrics' policy does not know (as after a
    policy change): they all share ``queue="other"``."""
    names = [f"q{i}" for i in range(60)]
    engine_policy = parse_policy(
        "".join(f'[queues.{n}]\noffer_mode = "auto"\nwrap_up_s = 0\n' for n in names)
    )
    metrics = Metrics(parse_policy('[queues.q0]\noffer_mode = "auto"\n'))
    desk = MeteredDesk(engine_policy, metrics)
    for a in range(5):
        desk.agent(f"a{a}")
    for i in range(600):
        channel = CHANNELS[i % len(CHANNELS)]
        desk.at(i).arrive(f"c{i}", channel, queue=names[i % len(names)])
        if i % 3 == 0:
            desk.send(ev.CustomerAbandoned, conversation_id=f"c{i}")
    m = desk.observe()

    queues = {"q0", "default", OTHER}
    bound = 1 * (len(queues) - 1 + 1) * len(CHANNELS)  # tenants x (queues + 1) x channels
    for family in QC_FAMILIES:
        found = series(m, family)
        assert len(found) <= bound, family
        assert {dict(k)["queue"] for k in found} <= queues, family
        assert {dict(k)["channel"] for k in found} <= set(CHANNELS), family
    naive = naive_gauges(desk.engine)
    waiting = {(dict(k)["queue"], dict(k)["channel"]): v
               for k, v in series(m, "omniroute_waiting").items()}  # fmt: skip
    for channel in CHANNELS:
        assert waiting.get((OTHER, channel), 0) == sum(
            n for (q, c), n in naive["waiting"].items() if c == channel and q != "q0"
        )
        assert waiting.get(("q0", channel), 0) == naive["waiting"][("q0", channel)]
    assigned = series(m, "omniroute_assigned_total")
    assert sum(assigned.values()) == len(of_type(desk.log, ev.ConversationAssigned)) > 0
    assert any(dict(k)["queue"] == OTHER for k in assigned)
    abandoned = series(m, "omniroute_abandoned_total")
    closed = [
        e for e, out in desk.inputs
        if isinstance(e, ev.CustomerAbandoned) and not of_type(out, ev.EventRejected)
    ]  # fmt: skip
    assert sum(abandoned.values()) == len(closed) > 0
    text = generate_latest(m.registry).decode()
    assert 'queue="q17"' not in text and f'queue="{OTHER}"' in text


# --- the real service ------------------------------------------------------------------------


def _scrape(port: int) -> tuple[str, dict[str, float]]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return text, values


def test_service_scrape_shows_queue_gauges_and_outcome_counters(
    nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    from omniroute.adapters.nats.server import free_port

    stream = StreamOptions(name=unique("S"), prefix=unique("p"))
    opts = options_for(nats_server)
    port = free_port()
    text = config_toml(nats_server.url, stream, [T], instance="mq", metrics_port=port,
                       extra_service="tick_interval_s = 0")  # fmt: skip
    events = workload(T, 800, seed=5)
    svc = InProcessService(service_config(text, tmp_path))
    try:
        seqs = publish(opts, stream, T, frames_of(events, seed=3))
        wait_until_consumed(opts, stream, T, seqs[-1])
        time.sleep(0.6)  # the gauges are recomputed every interval_s (0.2 s)
        scrape, m = _scrape(port)
        engine = svc.service.workers[T].engine
    finally:
        assert svc.stop() == 0
    log = log_events(opts, stream, T)
    channel_of = {e.conversation_id: e.channel for e in log
                  if isinstance(e, ev.ConversationArrived)}  # fmt: skip
    assigned = Counter(channel_of[e.conversation_id] for e in log
                       if isinstance(e, ev.ConversationAssigned))  # fmt: skip
    abandoned: Counter[str] = Counter()
    for i, e in enumerate(log):  # an input's decisions follow it in the log
        if isinstance(e, ev.CustomerAbandoned):
            nxt = log[i + 1] if i + 1 < len(log) else None
            if not (nxt is not None and is_decision(nxt) and isinstance(nxt, ev.EventRejected)):
                abandoned[channel_of[e.conversation_id]] += 1
    assert sum(assigned.values()) > 50 and sum(abandoned.values()) > 0
    for arrival, n in assigned.items():
        assert m[f"omniroute_assigned_total{{channel={arrival},queue=default,tenant={T}}}"] == n
    got = {k: v for k, v in m.items() if k.startswith("omniroute_abandoned_total{")}
    assert sum(got.values()) == sum(abandoned.values())

    naive = naive_gauges(engine)
    for (queue, channel), n in naive["waiting"].items():
        assert m[f"omniroute_waiting{{channel={channel},queue={queue},tenant={T}}}"] == n
        key = f"omniroute_oldest_wait_seconds{{channel={channel},queue={queue},tenant={T}}}"
        assert m[key] == naive["oldest"][(queue, channel)] / 1000
    waiting = sum(v for k, v in m.items() if k.startswith("omniroute_waiting{"))
    assert waiting == sum(naive["waiting"].values())
    state = engine.tenant(T)
    assert state is not None
    agents = sum(v for k, v in m.items() if k.startswith("omniroute_agents{"))
    assert agents == len(state.agents) == 12
    shown = (*QC_FAMILIES, "omniroute_agents{")
    print("\n".join(line for line in scrape.splitlines() if line.startswith(shown)))
