"""Prometheus metrics of ``omniroute serve`` (``prometheus_client``, one registry per service).

=======================================================  ===========================================
``omniroute_inputs_total{tenant}``                       input events applied (written to the log)
``omniroute_decisions_total{tenant,type}``               decisions written to the log, by event type
                                                         tag
``omniroute_rejected_total{tenant,stage}``               bad input: ``decode`` (unparsable message),
                                                         ``schema``, ``tenant``, ``decision`` (a
                                                         decision published as input), ``engine``
                                                         (invalid transition), ``internal`` (the
                                                         engine failed)
``omniroute_decision_latency_seconds``                   per input message: from its storage in the
                                                         stream to the acknowledgement of the log
                                                         frame holding its decisions (queueing
                                                         included)
``omniroute_queue_depth{tenant,class}``                  conversations waiting for an agent, by
                                                         media class
``omniroute_agents_available{tenant,class}``             routable agents with room for one more item
                                                         of the class, by the engine's own capacity
                                                         rule (budget, class maximum, interruption)
``omniroute_waiting{tenant,queue,channel}``              conversations waiting for an agent
                                                         (``in_queue``: queued, or in a warm
                                                         transfer)
``omniroute_oldest_wait_seconds{tenant,queue,channel}``  the longest wait among them, at the
                                                         tenant's clock (its latest event ``ts``,
                                                         never the wall clock), since their queue
                                                         episode began (``enqueued_ts``); 0 when
                                                         none waits
``omniroute_handling{tenant,queue,channel}``             conversations being served (stage
                                                         ``assigned``; wrap-up excluded; a warm
                                                         transfer counts here and as waiting)
``omniroute_agents{tenant,status}``                      agents (humans and bots) by status:
                                                         ``available``, ``not_responding``
                                                         (available, but skipped since an offer
                                                         lapsed), ``away``, ``offline``
``omniroute_assigned_total{tenant,queue,channel}``       ``ConversationAssigned`` decisions written
``omniroute_sla_breached_total{tenant,queue,channel}``   ``SlaBreached`` decisions written
``omniroute_abandoned_total{tenant,queue,channel}``      conversations closed by a
                                                         ``CustomerAbandoned`` input (a leg dropped
                                                         while another lives, or a rejected abandon,
                                                         is not counted)
``omniroute_consumer_lag{tenant}``                       input messages stored but not yet fetched
``omniroute_writer{tenant}``                             1 while this instance holds the tenant's
                                                         lease
``omniroute_tenants_led``                                tenants whose log this instance writes
``omniroute_log_position{tenant}``                       the log position applied (events in the
                                                         log)
``omniroute_takeovers_total{tenant}``                    leases acquired
``omniroute_append_conflicts_total``                     appends refused because another writer was
                                                         first
``omniroute_snapshots_total{tenant}``                    snapshots saved
``omniroute_replay_mismatches_total``                    recorded decisions the engine did not
                                                         reproduce
``omniroute_degraded``                                   1 while the service retries through a
                                                         cluster error (see ``/health``)
=======================================================  ===========================================

The endpoint also answers ``GET /health`` with JSON: ``{"status": "ok", "reasons": []}``
or ``{"status": "degraded", "reasons": ["nats disconnected", ...]}`` (see
:mod:`.health`), status 200 either way: a degraded service is alive and retrying; it
exits only on a configuration error or a condition it names. Every other path is
``/metrics``.

Label sets are bounded, whatever the inputs say:

===========  =================================================================================
``tenant``   the service's configured tenants (``[service] tenants``; with ``["*"]``, those it
             has led): only their workers observe or count anything
``queue``    the policy's queues (``policy.queues``, and ``default``); any other name is
             ``other`` (a policy queue named ``other`` shares that series)
``channel``  the fixed channels (``engine.events.CHANNELS``); a counted decision whose
             conversation left the state before it could be looked up (an SLA breach fired
             by the tick that also closed it) is counted as ``queue="other",channel="other"``
``status``   the four above
===========  =================================================================================

So each per-queue family holds at most T x (Q + 1) x C series (T tenants, Q policy queues
with ``default``, C = 10 channels), a counter family T more (``other``/``other``) and
``omniroute_agents`` 4 T. A gauge series, once shown, is set to 0 when nothing is left in
it, so a stale series never shows a queue that has emptied.

The gauges are recomputed from the engine every ``[metrics] interval_s``
(:meth:`Metrics.observe_state`: one pass over the tenant's conversations and agents, never
per event). The outcome counters come from the writer as it applies inputs: it asks
:meth:`Metrics.before` about an input that may close its conversation, then
:meth:`Metrics.tally` about the decisions, each labelled with its conversation's queue and
channel in the state the input left (or in the state before it, for a conversation the
input closed); :meth:`Metrics.count_outcomes` adds a batch's tally once its log frame is
acknowledged, like ``omniroute_decisions_total``. They count what this instance wrote: a
standby counts nothing until it takes over.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, TypeAlias, cast
from wsgiref.simple_server import WSGIRequestHandler, make_server

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from omniroute.engine.engine import Engine
from omniroute.engine.events import (
    CHANNELS,
    ConversationAssigned,
    ConversationEnded,
    CustomerAbandoned,
    Decision,
    Event,
    SlaBreached,
    WrapUpCompleted,
)
from omniroute.engine.policy import MEDIA_CLASSES, Policy
from omniroute.engine.state import AgentState, ConversationState

__all__ = ["AGENT_STATUS_LABELS", "OTHER", "Before", "Metrics", "Outcome", "Outcomes"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip

OTHER = "other"
"""The label of a queue the policy does not define (and of what cannot be looked up)."""

AGENT_STATUS_LABELS = ("available", "not_responding", "away", "offline")

Outcome: TypeAlias = Literal["assigned", "abandoned", "sla_breached"]
Outcomes: TypeAlias = "Tally[tuple[Outcome, str, str]]"
"""A writer's batch tally: (outcome, queue, channel) -> how many."""
Before: TypeAlias = tuple[str, str, str]
"""An input's conversation before the input: (conversation id, queue, channel) labels."""

_Closing: TypeAlias = CustomerAbandoned | ConversationEnded | WrapUpCompleted
_CLOSING: frozenset[type[Event]] = frozenset(
    {CustomerAbandoned, ConversationEnded, WrapUpCompleted}
)
"""The inputs that may close their conversation (so it is looked up before them); a set
of exact types, as ``isinstance`` on a struct class costs several times a set lookup."""


class _Quiet(WSGIRequestHandler):
    """No access log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _status(agent: AgentState) -> str:
    if agent.status == "available" and not agent.responsive:
        return "not_responding"
    return agent.status


class Metrics:
    """The service's metrics in their own registry; :meth:`serve` exposes ``/metrics``.

    ``policy`` names the queues that get their own label (the others are ``other``).
    """

    def __init__(self, policy: Policy | None = None) -> None:
        queues = (policy or Policy()).queues
        self.queue_labels: frozenset[str] = frozenset(queues) | {"default"}
        self.channel_labels: frozenset[str] = frozenset(CHANNELS)
        self._shown: dict[str, set[tuple[str, str]]] = {}  # per tenant: (queue, channel)
        self.registry = CollectorRegistry()
        r = self.registry
        self.inputs = Counter("omniroute_inputs", "Input events applied", ["tenant"], registry=r)
        self.decisions = Counter(
            "omniroute_decisions", "Decisions written to the log", ["tenant", "type"], registry=r
        )
        self.rejected = Counter(
            "omniroute_rejected",
            "Bad input events rejected, by stage (dead: dead letters)",
            ["tenant", "stage"],
            registry=r,
        )
        self.latency = Histogram(
            "omniroute_decision_latency_seconds",
            "Input stored in the stream -> its decisions acknowledged in the log",
            ["tenant"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "omniroute_queue_depth", "Conversations waiting", ["tenant", "class"], registry=r
        )
        self.agents_available = Gauge(
            "omniroute_agents_available",
            "Routable agents with room for one more item of the class",
            ["tenant", "class"],
            registry=r,
        )
        qc = ["tenant", "queue", "channel"]
        self.waiting = Gauge(
            "omniroute_waiting", "Conversations waiting for an agent", qc, registry=r
        )
        self.oldest_wait = Gauge(
            "omniroute_oldest_wait_seconds",
            "The longest current wait in the queue, at the tenant's clock",
            qc,
            registry=r,
        )
        self.handling = Gauge(
            "omniroute_handling", "Conversations assigned to an agent", qc, registry=r
        )
        self.agents = Gauge(
            "omniroute_agents", "Agents by status", ["tenant", "status"], registry=r
        )
        self.outcomes: dict[Outcome, Counter] = {
            "assigned": Counter("omniroute_assigned", "Conversations assigned", qc, registry=r),
            "abandoned": Counter(
                "omniroute_abandoned", "Conversations the customer abandoned", qc, registry=r
            ),
            "sla_breached": Counter("omniroute_sla_breached", "SLA breaches", qc, registry=r),
        }
        self.lag = Gauge(
            "omniroute_consumer_lag", "Input messages not yet fetched", ["tenant"], registry=r
        )
        self.writer = Gauge(
            "omniroute_writer", "1 while this instance writes the tenant's log", ["tenant"],
            registry=r,
        )  # fmt: skip
        self.tenants_led = Gauge(
            "omniroute_tenants_led", "Tenants whose log this instance writes", registry=r
        )
        self.position = Gauge(
            "omniroute_log_position", "Log position applied", ["tenant"], registry=r
        )
        self.takeovers = Counter("omniroute_takeovers", "Leases acquired", ["tenant"], registry=r)
        self.conflicts = Counter(
            "omniroute_append_conflicts", "Appends fenced off by another writer", ["tenant"],
            registry=r,
        )  # fmt: skip
        self.snapshots = Counter("omniroute_snapshots", "Snapshots saved", ["tenant"], registry=r)
        self.mismatches = Counter(
            "omniroute_replay_mismatches", "Recorded decisions not reproduced", ["tenant"],
            registry=r,
        )  # fmt: skip
        self.degraded = Gauge(
            "omniroute_degraded", "1 while retrying through a cluster error", registry=r
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def serve(
        self,
        port: int,
        address: str = "127.0.0.1",
        health: Callable[[], dict[str, object]] | None = None,
    ) -> int:
        """Start the ``/metrics`` (and, given ``health``, ``/health``) HTTP endpoint in a
        thread; returns the port (0: any free)."""
        metrics_app = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
            if health is not None and environ.get("PATH_INFO") == "/health":
                body = msgspec.json.encode(health())
                start_response("200 OK", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body)))])  # fmt: skip
                return iter([body])
            return iter(metrics_app(environ, start_response))

        server = make_server(address, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        self.port = int(server.server_port)
        return self.port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def labels_of(self, conv: ConversationState) -> tuple[str, str]:
        """The bounded (queue, channel) labels of a conversation."""
        queue, channel = conv.queue, conv.channel
        return (
            queue if queue in self.queue_labels else OTHER,
            channel if channel in self.channel_labels else OTHER,
        )

    # --- gauges, from the state, every interval ---------------------------------------------

    def observe_state(self, tenant: str, engine: Engine) -> None:
        """Recompute the gauges of ``tenant`` from ``engine``: O(conversations + agents)."""
        state = engine.tenant(tenant)
        depth = dict.fromkeys(MEDIA_CLASSES, 0)
        waiting: Tally[tuple[str, str]] = Tally()
        oldest: dict[tuple[str, str], int] = {}
        handling: Tally[tuple[str, str]] = Tally()
        agents = dict.fromkeys(AGENT_STATUS_LABELS, 0)
        if state is not None:
            now = state.clock  # engine.clock_of(tenant)
            labels_of = self.labels_of
            for conv in state.conversations.values():
                if conv.in_queue:
                    depth[conv.media_class] += 1
                    key = labels_of(conv)
                    waiting[key] += 1
                    wait = now - conv.enqueued_ts
                    if wait > oldest.get(key, 0):
                        oldest[key] = wait
                if conv.stage == "assigned":
                    handling[labels_of(conv)] += 1
            for agent in state.agents.values():
                agents[_status(agent)] += 1
        available = engine.agents_with_room(tenant)
        for cls in MEDIA_CLASSES:
            self.queue_depth.labels(tenant, cls).set(depth[cls])
            self.agents_available.labels(tenant, cls).set(available[cls])
        shown = self._shown.setdefault(tenant, set())
        shown.update(waiting, handling)  # a bounded set: so are the labels
        for queue, channel in shown:
            key = (queue, channel)
            self.waiting.labels(tenant, queue, channel).set(waiting.get(key, 0))
            self.oldest_wait.labels(tenant, queue, channel).set(oldest.get(key, 0) / 1000)
            self.handling.labels(tenant, queue, channel).set(handling.get(key, 0))
        for status, n in agents.items():
            self.agents.labels(tenant, status).set(n)

    # --- outcome counters, from the writer's decisions --------------------------------------

    def before(self, engine: Engine, tenant: str, event: Event) -> Before | None:
        """For an input that may close its conversation: that conversation's id and labels
        now (before the input is applied); otherwise None. Cheap: one type check."""
        if type(event) not in _CLOSING:
            return None
        state = engine.tenant(tenant)
        if state is None:
            return None
        named = cast(_Closing, event).conversation_id
        cid = state.aliases.get(named, named)
        conv = state.conversations.get(cid)
        if conv is None:
            return None
        return (cid, *self.labels_of(conv))

    def tally(
        self,
        engine: Engine,
        tenant: str,
        event: Event,
        decisions: Sequence[Decision],
        before: Before | None,
        into: Outcomes,
    ) -> None:
        """Add to ``into`` the outcomes of ``event`` just applied (``decisions``: what it
        caused; ``before``: what :meth:`before` said about it)."""
        conversations: dict[str, ConversationState] | None = None  # looked up when needed
        for d in decisions:
            if type(d) is ConversationAssigned:
                kind: Outcome = "assigned"
            elif type(d) is SlaBreached:
                kind = "sla_breached"
            else:
                continue
            if conversations is None:
                conversations = self._conversations(engine, tenant)
            conv = conversations.get(d.conversation_id)
            if conv is not None:
                queue, channel = self.labels_of(conv)
            elif before is not None and before[0] == d.conversation_id:
                queue, channel = before[1], before[2]
            else:  # it left the state within the same input
                queue = channel = OTHER
            into[kind, queue, channel] += 1
        if before is not None and type(event) is CustomerAbandoned:
            if conversations is None:
                conversations = self._conversations(engine, tenant)
            if before[0] not in conversations:  # closed, not a leg dropped nor rejected
                into["abandoned", before[1], before[2]] += 1

    @staticmethod
    def _conversations(engine: Engine, tenant: str) -> dict[str, ConversationState]:
        state = engine.tenant(tenant)
        return state.conversations if state is not None else {}

    def count_outcomes(
        self, tenant: str, outcomes: Iterable[tuple[tuple[Outcome, str, str], int]]
    ) -> None:
        """Add a batch's tally (``Outcomes.items()``) to the counters."""
        for (kind, queue, channel), n in outcomes:
            self.outcomes[kind].labels(tenant, queue, channel).inc(n)
