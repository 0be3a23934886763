"""Prometheus metrics of ``omniroute gateway`` (its own registry, served at ``/metrics``).

=============================================  ===============================================
``omniroute_gateway_requests_total``            requests by ``route`` (``webhook``, ``desk``,
  ``{route,provider,status}``                   ``events``...), provider and HTTP status
``omniroute_gateway_items_total``               webhook items by provider and outcome:
  ``{provider,outcome}``                        ``arrived``, ``message``, ``ended``,
                                                ``duplicate``, or the reason it was ignored
``omniroute_gateway_rejects_total``             refused requests by reason: ``signature``,
  ``{provider,reason}``                         ``bad_payload``, ``too_large``, ``rate_limited``,
                                                ``unknown_source``, ``unavailable``
``omniroute_gateway_publish_seconds``           a request's inputs built -> durable in the log
``omniroute_gateway_desk_streams``              open desk event streams (SSE)
=============================================  ===============================================

Label values come from the configuration and fixed sets, never from request text: the
label sets stay bounded whatever arrives.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "omniroute_gateway_requests", "HTTP requests", ["route", "provider", "status"],
            registry=r,
        )  # fmt: skip
        self.items = Counter(
            "omniroute_gateway_items", "Webhook items by outcome", ["provider", "outcome"],
            registry=r,
        )  # fmt: skip
        self.rejects = Counter(
            "omniroute_gateway_rejects", "Refused requests by reason", ["provider", "reason"],
            registry=r,
        )  # fmt: skip
        self.publish = Histogram(
            "omniroute_gateway_publish_seconds", "Inputs built -> durable in the log",
            buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.streams = Gauge(
            "omniroute_gateway_desk_streams", "Open desk event streams", registry=r
        )
