"""Helpers for tests on a JetStream cluster (``LocalNatsCluster``): watching tenants' logs
resume after a node or an instance is killed, and asking instances who writes.

The cluster itself is ``omniroute.adapters.nats.cluster.LocalNatsCluster`` (fixture
``nats_cluster`` in ``tests/adapters/service/conftest.py``); the service runs as real
``omniroute serve`` processes (``tests.support.service.ServeProcess``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.request
from collections.abc import Sequence
from typing import TypeAlias

from omniroute.adapters.nats.asynclog import AsyncNatsLog
from omniroute.adapters.nats.frames import HEADER_WRITER
from omniroute.adapters.nats.options import NatsOptions, StreamOptions, connect

__all__ = ["Tail", "health", "roles", "summary", "tails", "wait_resumed"]


Tail: TypeAlias = dict[str, tuple[int, str]]
"""Per tenant: (log end position, writer of the last frame)."""


def tails(options: NatsOptions, stream: StreamOptions, tenants: Sequence[str]) -> Tail | None:
    """Every tenant's log tail now, or None when the cluster cannot say (an election)."""

    async def go() -> Tail:
        nc = await connect(options)
        try:
            out: Tail = {}
            for tenant in tenants:
                frame = await AsyncNatsLog(nc, stream, tenant, timeout=1.0).last_frame()
                out[tenant] = (0, "") if frame is None else (
                    frame.end, frame.headers.get(HEADER_WRITER, "")
                )  # fmt: skip
            return out
        finally:
            await nc.close()

    try:
        return asyncio.run(asyncio.wait_for(go(), 5.0))
    except Exception:
        return None


def wait_resumed(
    options: NatsOptions,
    stream: StreamOptions,
    before: Tail,
    *,
    not_by: str | None = None,
    timeout: float = 60.0,
) -> float:
    """Seconds until every tenant of ``before`` has logged past it (and, with ``not_by``,
    its last frame is by another writer: a take-over); AssertionError after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        now = tails(options, stream, list(before))
        if now is not None and all(
            now[t][0] > before[t][0] and (not_by is None or now[t][1] != not_by) for t in before
        ):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"the logs did not resume within {timeout} s (before: {dict(before)})")


def health(port: int) -> dict[str, object] | None:
    """An instance's ``/health`` report, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as reply:
            report: dict[str, object] = json.loads(reply.read())
            return report
    except OSError:
        return None


def roles(port: int) -> dict[str, str]:
    """An instance's tenants and its role in each (``writer``, ...), from ``/health``; {}
    when it does not answer."""
    report = health(port)
    tenants = report.get("tenants") if report else None
    return dict(tenants) if isinstance(tenants, dict) else {}


def summary(name: str, seconds: Sequence[float]) -> str:
    """``name: n=.., p50=.. s, max=.. s`` (or ``name: none``)."""
    if not seconds:
        return f"{name}: none"
    return (f"{name}: n={len(seconds)}, p50={statistics.median(seconds):.2f} s, "
            f"max={max(seconds):.2f} s")  # fmt: skip
