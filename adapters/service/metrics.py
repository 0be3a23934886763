"""Prometheus metrics of ``omniroute serve`` (``prometheus_client``, one registry per service).

=========================================  =====================================================
``omniroute_inputs_total{tenant}``          input events applied (written to the log)
``omniroute_decisions_total{tenant,type}``  decisions written to the log, by event type tag
``omniroute_rejected_total{tenant,stage}``  bad input: ``decode`` (unparsable message),
                                            ``schema``, ``tenant``, ``decision`` (a decision
                                            published as input), ``engine`` (invalid
                                            transition), ``internal`` (the engine failed)
``omniroute_decision_latency_seconds``      per input message: from its storage in the stream
                                            to the acknowledgement of the log frame holding
                                            its decisions (queueing included)
``omniroute_queue_depth{tenant,class}``     conversations waiting for an agent, by media class
``omniroute_agents_available{tenant,class}`` routable agents with room for one more item of
                                            the class, by the engine's own capacity rule
                                            (budget, class maximum, interruption)
``omniroute_consumer_lag{tenant}``          input messages stored but not yet fetched
``omniroute_writer{tenant}``                1 while this instance holds the tenant's lease
``omniroute_log_position{tenant}``          the log position applied (events in the log)
``omniroute_takeovers_total{tenant}``       leases acquired
``omniroute_append_conflicts_total``        appends refused because another writer was first
``omniroute_snapshots_total{tenant}``       snapshots saved
``omniroute_replay_mismatches_total``       recorded decisions the engine did not reproduce
=========================================  =====================================================
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from omniroute.engine.engine import Engine
from omniroute.engine.policy import MEDIA_CLASSES

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
)  # fmt: skip


class Metrics:
    """The service's metrics in their own registry; :meth:`serve` exposes ``/metrics``."""

    def __init__(self) -> None:
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
        self.lag = Gauge(
            "omniroute_consumer_lag", "Input messages not yet fetched", ["tenant"], registry=r
        )
        self.writer = Gauge(
            "omniroute_writer", "1 while this instance writes the tenant's log", ["tenant"],
            registry=r,
        )  # fmt: skip
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
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def serve(self, port: int, address: str = "127.0.0.1") -> int:
        """Start the ``/metrics`` HTTP endpoint in a thread; returns the port (0: any free)."""
        server, thread = start_http_server(port, addr=address, registry=self.registry)
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

    def observe_state(self, tenant: str, engine: Engine) -> None:
        """Recompute the queue depth and available-agent gauges of ``tenant`` from ``engine``."""
        state = engine.tenant(tenant)
        depth = dict.fromkeys(MEDIA_CLASSES, 0)
        if state is not None:
            for conv in state.conversations.values():
                if conv.in_queue:
                    depth[conv.media_class] += 1
        available = engine.agents_with_room(tenant)
        for cls in MEDIA_CLASSES:
            self.queue_depth.labels(tenant, cls).set(depth[cls])
            self.agents_available.labels(tenant, cls).set(available[cls])
