"""``omniroute serve``: tenants' logs kept by engines over NATS JetStream, one writer per tenant.

Needs the ``service`` extra (nats-py, prometheus_client).
"""
